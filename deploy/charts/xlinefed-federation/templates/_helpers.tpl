{{- /*
The release-scoped name: <release>-federation-operator (xlinefed render's names for the release
"xlinefed"), or fullnameOverride; cut to a DNS label as xlinefed/install/names.py: scoped.
*/}}
{{- define "xlinefed-federation.name" -}}
{{- default (printf "%s-federation-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xlinefed-federation.metricsName" -}}
{{- printf "%s-metrics" (include "xlinefed-federation.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

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

{{- /* The pod's scheduling and pull fields, each only when set (so the defaults render
what xlinefed render does). */}}
{{- define "xlinefed-federation.podPlacement" -}}
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
