{{/* Chart name, overridable. */}}
{{- define "torii.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects: the release name when it contains the
chart name ("torii" -> "torii"), "<release>-<chart>" otherwise.
*/}}
{{- define "torii.fullname" -}}
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

{{/* Labels that select the pods; immutable once installed. */}}
{{- define "torii.selectorLabels" -}}
app.kubernetes.io/name: {{ include "torii.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "torii.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "torii.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "torii.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "torii.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "torii.electionID" -}}
{{- default (printf "%s-leader" (include "torii.fullname" .)) .Values.controller.electionID -}}
{{- end -}}

{{- define "torii.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Read and write rules on namespaced objects. Granted cluster-wide by the
ClusterRole, or by a Role in each of controller.watchNamespaces. Keep the
comments in deploy/torii.yaml in step.
*/}}
{{- define "torii.namespacedRules" -}}
# The routing input itself.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch"]
# Backend ports (name -> number, ExternalName); the --publish-service address.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch"]
# TLS certificates. list/watch only: the informer is the only reader and asks
# for type=kubernetes.io/tls by field selector. RBAC cannot express that
# filter, so this still allows listing every Secret; `get` is left out.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
# Ready pod endpoints: Torii proxies straight to them.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
# The only write on routing objects: status.loadBalancer of owned Ingresses.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses/status"]
  verbs: ["update", "patch"]
# Translation problems as Events on the offending object (events.k8s.io/v1
# recorder, and the legacy core one).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The admission webhook's Service, and its certificate Secret. */}}
{{- define "torii.webhookService" -}}
{{- printf "%s-webhook" (include "torii.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "torii.webhookSecret" -}}
{{- default (printf "%s-webhook-cert" (include "torii.fullname" .)) .Values.webhook.certificate.secretName -}}
{{- end -}}

{{/* Whether Torii makes the webhook certificate itself. */}}
{{- define "torii.webhookBootstrap" -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.certificate.existingSecret) -}}true{{- end -}}
{{- end -}}
