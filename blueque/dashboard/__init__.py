"""The live web dashboard (`blueque dashboard`, `pip install 'blueque[dashboard]'`).

It follows each queue's own event channel (one subscription per queue, shared by every open
page, `hub.py`), pushes what changed to the pages by server-sent events (`stream.py`), reads
counts with the protocol's O(1) stats call, and serves a JSON API shaped like the CLI's
`--json` (`api.py`). Pages (`pages.py`, `templates/`) are plain HTML with one vendored
script (`static/dashboard.js`): no build step, no CDN, so it works air-gapped. Who may read
and act, and the headers of every response, are in `security.py`; the settings in
`settings.py`; the running dashboard, as every handler reaches it, in `state.py`. Starlette,
uvicorn and Jinja2 are the extra's packages; nothing else in Blueque imports this package.
"""

from blueque.dashboard.app import create_app
from blueque.dashboard.settings import DashboardSettings

__all__ = ["DashboardSettings", "create_app"]
