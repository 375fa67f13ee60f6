{{/*
The operator's permissions, as three lists of rules; rbac.yaml binds them. Cluster mode: a
ClusterRole with "namespacedRules" and "clusterRules". Namespaces mode: a Role with
"namespacedRules" in each watched namespace. Both: "leaderElectionRules" in the release
namespace only.

Each rule is what the operator's code does (operator/blueque_operator: kube.py, leader.py, the
Kopf watches of runtime.py), nothing more. Kopf runs with scanning and event posting off and
only watches (on.event: no patches of its own, no finalizers), so it needs no rule on CRDs,
namespaces or its peering objects. Anything not listed here is denied: tests/kube/
test_kube_chart.py checks the ServiceAccount's own token against these lists, and runs the
operator with it.
*/}}

{{- define "blueque.namespacedRules" -}}
# Kopf watches the BlueQueues...
- apiGroups: [blueque.io]
  resources: [bluequeues]
  verbs: [list, watch]
# ...and the operator writes their status.
- apiGroups: [blueque.io]
  resources: [bluequeues/status]
  verbs: [patch]
# The worker Deployment of each BlueQueue: watched, read, created, reconciled, deleted
# (owner references delete it too).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# Its replicas, through the scale subresource.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
# Which ReplicaSet a scale-down acts on (one only, not during a rollout).
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch]
# Worker pods: the reaper's DELETED events, the sweep's GETs, the deletion cost and
# do-not-disrupt annotations. Never delete: the ReplicaSet removes pods.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
# spec.redis.passwordSecretRef, read by name: no list, no watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events on scale, reap and errors.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "blueque.clusterRules" -}}
# A partitioned node: a worker pod that never produces DELETED is reaped when its node is gone
# or NotReady. In the namespaces mode the operator does without (the GET is refused).
- apiGroups: [""]
  resources: [nodes]
  verbs: [get]
{{- end -}}

{{- define "blueque.leaderElectionRules" -}}
# The Lease `blueque-operator`: the replica that holds it acts, the others wait.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}


{{/* The dashboard's rules (values.dashboard.enabled): it lists BlueQueues and their Events for
its scaling view, and reads nothing else (no Secrets: its Redis password comes from the
Secret named in its values, through the pod's env). Bound by dashboard.yaml, cluster-wide or
in each watched namespace like the operator's. */}}
{{- define "blueque.dashboardRules" -}}
- apiGroups: [blueque.io]
  resources: [bluequeues]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [list]
{{- end -}}
