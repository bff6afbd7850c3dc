{{- define "weft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "weft.labels" -}}
app.kubernetes.io/name: {{ include "weft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "weft.selector" -}}
app.kubernetes.io/name: {{ include "weft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "weft.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "weft.mpiImage" -}}
{{- if .Values.mpi.image.repository -}}
{{ .Values.mpi.image.repository }}:{{ .Values.mpi.image.tag | default .Chart.AppVersion }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}-mpi
{{- end -}}
{{- end -}}

{{/* The UI's own name label, so the operator's selector never matches its pods. */}}
{{- define "weft.uiSelector" -}}
app.kubernetes.io/name: {{ include "weft.name" . }}-ui
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "weft.uiLabels" -}}
{{ include "weft.uiSelector" . }}
app.kubernetes.io/component: ui
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The notebook profile file the operator reads (notebook/profile.rs), from
     values.notebooks.profile. */}}
{{- define "weft.notebookProfile" -}}
{{- $p := .Values.notebooks.profile -}}
{{- $image := printf "%s:%s" $p.image.repository ($p.image.tag | default .Chart.AppVersion) -}}
{{- toYaml (dict "image" $image "imagePullPolicy" $p.image.pullPolicy "resources" $p.resources "workspace" $p.workspace "env" $p.env "nodeSelector" $p.nodeSelector "tolerations" $p.tolerations) -}}
{{- end -}}
