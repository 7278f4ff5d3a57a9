{{- define "xlinefed-federation.name" -}}xlinefed-federation-operator{{- end }}

{{- define "xlinefed-federation.selector" -}}
app.kubernetes.io/name: {{ include "xlinefed-federation.name" . }}
{{- end }}

{{- define "xlinefed-federation.labels" -}}
{{ include "xlinefed-federation.selector" . }}
app.kubernetes.io/part-of: xlinefed
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "xlinefed-federation.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
