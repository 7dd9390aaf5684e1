{{/* Name of the release's objects: the release name when it already says seccomp-agent. */}}
{{- define "seccomp-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "seccomp-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "seccomp-agent.labels" -}}
{{ include "seccomp-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "seccomp-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "seccomp-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: give the name of your ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "seccomp-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* HOST and PORT of .Values.listen (the schema has checked its shape). */}}
{{- define "seccomp-agent.listenHost" -}}
{{- regexReplaceAll ":[0-9]+$" .Values.listen "" | trimPrefix "[" | trimSuffix "]" -}}
{{- end -}}
{{- define "seccomp-agent.listenPort" -}}
{{- regexFind "[0-9]+$" .Values.listen -}}
{{- end -}}

{{/* Where the kubelet's probes connect: the agent's address, or loopback when it listens on all. */}}
{{- define "seccomp-agent.probeHost" -}}
{{- $h := include "seccomp-agent.listenHost" . -}}
{{- if has $h (list "0.0.0.0" "::" "localhost") -}}127.0.0.1{{- else -}}{{ $h }}{{- end -}}
{{- end -}}

{{- define "seccomp-agent.loopback" -}}
{{- $h := include "seccomp-agent.listenHost" . -}}
{{- if or (hasPrefix "127." $h) (eq $h "::1") (eq $h "localhost") -}}true{{- end -}}
{{- end -}}
