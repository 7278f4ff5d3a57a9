{{- /*
The release-scoped name: <release>-member-operator (xlinefed render's names for the release
"xlinefed"), or fullnameOverride; cut to a DNS label as xlinefed/install/names.py: scoped.
*/}}
{{- define "xlinefed-member.name" -}}
{{- default (printf "%s-member-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xlinefed-member.metricsName" -}}
{{- printf "%s-metrics" (include "xlinefed-member.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

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

{{- /* The pod's scheduling and pull fields, each only when set (so the defaults render
what xlinefed render does). */}}
{{- define "xlinefed-member.podPlacement" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
