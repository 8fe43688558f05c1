{{/* The release's full name, at most 63 characters. */}}
{{- define "archlab.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "archlab.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "archlab.labels" -}}
{{ include "archlab.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: archlab
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "archlab.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "archlab.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "archlab.image" -}}
{{- printf "%s:%s" .repository (default $.appVersion .tag) -}}
{{- end -}}

{{/* The Prometheus job label of the operator's metrics. */}}
{{- define "archlab.job" -}}
{{- default (printf "%s-metrics" (include "archlab.fullname" .)) .Values.prometheusRule.job -}}
{{- end -}}

{{/* The account trainer pods run under when a Campaign names none. The chart's own exists only
in the release's namespace, so with watch.allNamespaces it is each namespace's `default`. */}}
{{- define "archlab.trainerServiceAccountName" -}}
{{- if .Values.watch.allNamespaces -}}
default
{{- else -}}
{{- default (printf "%s-trainer" (include "archlab.fullname" .)) .Values.trainer.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The trainer image repository the chart itself uses, always allowed by the policy. */}}
{{- define "archlab.policyImages" -}}
{{- without (uniq (prepend .Values.policy.images .Values.trainer.image.repository)) "" | join "," -}}
{{- end -}}
