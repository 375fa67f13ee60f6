{{/* Names, labels and the watched namespaces, shared by every template. */}}

{{- define "blueque.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name when it already holds the chart's name. */}}
{{- define "blueque.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding) are unique per release and
namespace: two releases of one name in two namespaces must not share them. */}}
{{- define "blueque.clusterName" -}}
{{- printf "%s-%s" (include "blueque.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blueque.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blueque.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blueque.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "blueque.labels" -}}
{{ include "blueque.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: blueque
helm.sh/chart: {{ include "blueque.chart" . }}
{{- end -}}

{{- define "blueque.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "blueque.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "blueque.image" -}}
{{- $repository := required "image.repository is required: the operator image you built and pushed (no registry publishes it), e.g. --set image.repository=REGISTRY/blueque-operator" .Values.image.repository -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the schema cannot say; included by the Deployment, so it fails every render. */}}
{{- define "blueque.validate" -}}
{{- if and (eq .Values.watch.mode "cluster") .Values.watch.namespaces -}}
{{- fail "watch.namespaces is only read with watch.mode=namespaces (cluster mode watches every namespace): set watch.mode=namespaces, or leave watch.namespaces empty" -}}
{{- end -}}
{{- end -}}

{{/* The namespaces of the `namespaces` mode, as a JSON list: the release namespace by default. */}}
{{- define "blueque.watchedNamespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- .Values.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* The optional dashboard (values.dashboard): its own labels, ServiceAccount and Secret. */}}
{{- define "blueque.dashboardName" -}}
{{- printf "%s-dashboard" (include "blueque.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blueque.dashboardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "blueque.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dashboard
{{- end -}}

{{- define "blueque.dashboardLabels" -}}
{{ include "blueque.dashboardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: blueque
helm.sh/chart: {{ include "blueque.chart" . }}
{{- end -}}

{{- define "blueque.dashboardServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "blueque.dashboardName" . -}}
{{- else -}}
{{- required "dashboard.serviceAccountName is required when serviceAccount.create is false" .Values.dashboard.serviceAccountName -}}
{{- end -}}
{{- end -}}

{{- define "blueque.dashboardTokenSecret" -}}
{{- default (printf "%s-token" (include "blueque.dashboardName" .)) .Values.dashboard.auth.existingSecret -}}
{{- end -}}
