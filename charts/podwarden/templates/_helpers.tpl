{{- define "podwarden.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podwarden.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "podwarden.labels" -}}
{{ include "podwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "podwarden.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- /* The rules on namespaced resources: in the ClusterRole, or in each watched namespace's Role. */ -}}
{{- define "podwarden.namespacedRules" -}}
# The pod list and watch; reads of one pod (a replacement's name taken, a guard).
- apiGroups: [""]
  resources: ["pods"]
  {{- if .Values.orphanRecreation.enabled }}
  # create: replacements; patch: the orphan-guard finalizer and the replacement mark.
  verbs: ["get", "list", "watch", "create", "patch"]
  {{- else }}
  verbs: ["get", "list", "watch"]
  {{- end }}
# Findings as Events; a repeated state bumps its Event's series; the own Events are
# listed at start so that a restart records nothing twice.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "get", "list", "patch"]
- apiGroups: ["podwarden.dev"]
  resources: ["podlifecyclepolicies"]
  verbs: ["list", "watch"]
- apiGroups: ["podwarden.dev"]
  resources: ["podlifecyclepolicies/status"]
  verbs: ["patch"]
{{- end -}}
