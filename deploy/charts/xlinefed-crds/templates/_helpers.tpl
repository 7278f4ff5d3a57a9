{{- /*
One CRD from files/ (generated from the models by `python -m xlinefed.install`, the same
text as deploy/crds/), with the chart's labels and the keep policy added.
*/}}
{{- define "xlinefed-crds.crd" -}}
{{- $crd := .root.Files.Get .file | fromYaml }}
{{- $labels := dict "app.kubernetes.io/part-of" "xlinefed" "app.kubernetes.io/version" .root.Chart.AppVersion "app.kubernetes.io/instance" .root.Release.Name "app.kubernetes.io/managed-by" .root.Release.Service "helm.sh/chart" (printf "%s-%s" .root.Chart.Name .root.Chart.Version) }}
{{- $_ := set $crd.metadata "labels" (merge (default dict $crd.metadata.labels) $labels) }}
{{- $_ := set $crd.metadata "annotations" (merge (default dict $crd.metadata.annotations) (dict "helm.sh/resource-policy" "keep")) }}
{{- toYaml $crd }}
{{- end }}
