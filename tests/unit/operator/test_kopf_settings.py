"""The operator's Kopf settings: watching only, and nothing deprecated in the pinned Kopf (its
deprecated settings warn, and warnings are errors here)."""

from __future__ import annotations

import warnings

import kopf

from blueque_operator.runtime import configure_kopf


def test_configure_kopf_sets_watching_only_without_deprecated_settings() -> None:
    settings = kopf.OperatorSettings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configure_kopf(settings)
    assert settings.peering.standalone
    assert not settings.posting.enabled
    assert settings.scanning.disabled
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (300, 330)
    assert settings.queueing.exit_timeout == 0.2
