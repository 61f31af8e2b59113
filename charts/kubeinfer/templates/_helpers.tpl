{{- /*
Shared names and labels. Object names are fixed (see values.yaml): the operator's report
endpoint, the tier PriorityClasses and the DeviceClass are names the operator itself uses.
Nothing here may depend on time, randomness or the cluster's state (no now, rand*, gen*,
lookup): Argo CD renders the chart on every refresh and must get the same bytes.
*/}}

{{- define "kubeinfer.name" -}}kubeinfer{{- end }}
{{- define "kubeinfer.operatorName" -}}kubeinfer-operator{{- end }}
{{- define "kubeinfer.agentName" -}}kubeinfer-agent{{- end }}

{{- /* helm.sh/chart churns with the chart version, so it goes on object metadata only. */}}
{{- define "kubeinfer.chart" -}}
{{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end }}

{{- /* Labels of every object: the standard app.kubernetes.io set. */}}
{{- define "kubeinfer.labels" -}}
helm.sh/chart: {{ include "kubeinfer.chart" . }}
app.kubernetes.io/name: {{ include "kubeinfer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubeinfer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /* Labels of a component's objects: call with (dict "root" $ "component" "operator"). */}}
{{- define "kubeinfer.componentLabels" -}}
{{ include "kubeinfer.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* Selector labels: immutable on a Deployment/DaemonSet, so the same as manifests/. */}}
{{- define "kubeinfer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeinfer.name" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* Pod template labels: selector labels plus the stable ones (no chart version). */}}
{{- define "kubeinfer.podLabels" -}}
{{ include "kubeinfer.selectorLabels" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: kubeinfer
{{- with .podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kubeinfer.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{- /* The operator's command: the same as manifests/operator/deployment.yaml by default. */}}
{{- define "kubeinfer.operatorCommand" -}}
- kubeinfer
- run
{{- if .Values.operator.watchNamespaces }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- if ne (int .Values.operator.port) 8080 }}
- --http-port={{ .Values.operator.port }}
{{- end }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
