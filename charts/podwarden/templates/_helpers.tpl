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

{{- /* The pod and container security settings every podwarden pod runs with. */ -}}
{{- define "podwarden.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "podwarden.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- /* checkov's findings that do not apply, with the reason (on every workload). */ -}}
{{- define "podwarden.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_11=No CPU limit on purpose, a limit throttles the audit of an event burst; the request reserves what it needs"
checkov.io/skip2: "CKV_K8S_38=The controller calls the API server with its service account token, so it needs it mounted"
checkov.io/skip3: "CKV_K8S_43=The digest is known per install; set image.digest to pin it"
checkov.io/skip4: "CKV_K8S_15=IfNotPresent by default so that a pinned tag or digest is not pulled again; set image.pullPolicy to Always if wanted"
{{- end -}}
