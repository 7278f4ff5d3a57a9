{{- define "xlinefed-member.name" -}}xlinefed-member-operator{{- end }}

{{- define "xlinefed-member.selector" -}}
app.kubernetes.io/name: {{ include "xlinefed-member.name" . }}
{{- end }}

{{- define "xlinefed-member.labels" -}}
{{ include "xlinefed-member.selector" . }}
app.kubernetes.io/part-of: xlinefed
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "xlinefed-member.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
