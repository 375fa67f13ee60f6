"""`./dev bench operator`: the Blueque operator against KEDA, on one local cluster and one Redis.

Three setups run one after another, each with the same real `blueque worker` processes (the pod
runner plays the kubelet), the same maximum replicas, minimum 0 and grace period:

1. `keda-default`: a plain Deployment, a ScaledObject with a `redis` trigger on the pending list,
   KEDA's and the HPA's defaults (`setups.py` lists every knob), `blueque scheduler` reaping;
2. `keda-tuned`: the same, tuned as far as KEDA and the HPA go (1 s polling and HPA sync, an
   aggressive scale-up policy, short cooldown and window);
3. `blueque`: a BlueQueue and the Blueque operator with its defaults.

Each runs the same workloads (`workloads.py`): bursts from zero, a steady trickle, long tasks
mixed with short ones. `recorder.py` watches pods and the Deployment and samples the queue;
`results.py` turns that into the figures; `plots.py` draws them; `run.py` drives it all.
"""
