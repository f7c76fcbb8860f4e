{{- define "moderation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moderation.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "moderation.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "moderation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "moderation.selector" -}}
app.kubernetes.io/name: {{ include "moderation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "moderation.gateway.selector" -}}
{{ include "moderation.selector" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "moderation.triton.selector" -}}
{{ include "moderation.selector" . }}
app.kubernetes.io/component: triton
{{- end -}}

{{- define "moderation.gateway.fullname" -}}{{ include "moderation.fullname" . }}-gateway{{- end -}}
{{- define "moderation.triton.fullname" -}}{{ include "moderation.fullname" . }}-triton{{- end -}}

{{- define "moderation.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "moderation.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "moderation.adminSecretName" -}}
{{- default (printf "%s-admin-token" (include "moderation.fullname" .)) .Values.secrets.adminToken.existingSecret -}}
{{- end -}}
{{- define "moderation.controlSecretName" -}}
{{- default (printf "%s-triton-control" (include "moderation.fullname" .)) .Values.secrets.tritonControlKey.existingSecret -}}
{{- end -}}
{{- define "moderation.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "moderation.fullname" .)) .Values.secrets.apiKeys.existingSecret -}}
{{- end -}}
{{- define "moderation.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "moderation.fullname" .)) .Values.secrets.tls.existingSecret -}}
{{- end -}}
{{- define "moderation.policyConfigMapName" -}}
{{- default (printf "%s-policy" (include "moderation.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}
{{- define "moderation.versionConfigMapName" -}}{{ include "moderation.fullname" . }}-model-version{{- end -}}

{{/* A generated secret value that survives upgrades: reuse what the cluster has. */}}
{{- define "moderation.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- if .value -}}
{{- .value | b64enc -}}
{{- else if and $existing (index $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 40 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Restrictive container securityContext shared by every container. */}}
{{- define "moderation.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given (immutable, what checkov asks for) */}}
{{- define "moderation.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}
