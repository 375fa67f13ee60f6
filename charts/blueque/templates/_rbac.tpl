{{/*
The operator's permissions, as three lists of rules; rbac.yaml binds them. Cluster mode: a
ClusterRole with "namespacedRules" and "clusterRules". Namespaces mode: a Role with
"namespacedRules" in each watched namespace. Both: "leaderElectionRules" in the release
namespace only. No rule on namespaces: Kopf lists and watches them only to match namespace
patterns, never cluster-wide (--all-namespaces) nor for the exact names --namespace gives (it
then warns once and uses the names). Anything not listed here is denied (tests/kube/test_kube_chart.py proves it with
the ServiceAccount's own token).
*/}}

{{- define "blueque.namespacedRules" -}}
# The BlueQueues (Kopf watches them and patches its annotations; no finalizers)...
- apiGroups: [blueque.io]
  resources: [bluequeues]
  verbs: [get, list, watch, patch]
# ...and their status.
- apiGroups: [blueque.io]
  resources: [bluequeues/status]
  verbs: [get, patch, update]
# The worker Deployment of each BlueQueue: created, reconciled, scaled; owner references delete it.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
# Which ReplicaSet a scale-down acts on (one only, not during a rollout).
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
# Worker pods: the reaper's DELETED events, the sweep's GETs, deletion cost and
# do-not-disrupt annotations. Never delete: the ReplicaSet removes pods.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
# spec.redis.passwordSecretRef, read by name: no list, no watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events on scale, reap and errors (Kopf posts core events).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "blueque.clusterRules" -}}
# A partitioned node: a worker whose pod never produces DELETED is reaped when its node is
# NotReady and its heartbeat expired.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
# Kopf notices CRDs coming and going. Not granted in the namespaces mode: there Kopf warns once
# and keeps the resources it found at start (or the operator turns its scanning off).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end -}}

{{- define "blueque.leaderElectionRules" -}}
# The Lease `blueque-operator`: the replica that holds it acts, the others wait.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch]
{{- end -}}
