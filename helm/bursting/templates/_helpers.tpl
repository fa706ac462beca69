{{/* Names, labels and the controller's config file, shared by every template. */}}

{{- define "bursting.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bursting.fullname" -}}
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

{{- define "bursting.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bursting.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bursting.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bursting.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "bursting.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bursting.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when replicas elect a leader through a Lease; empty otherwise. */}}
{{- define "bursting.leaderElection" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.leaderElection.force -}}true{{- end -}}
{{- end -}}

{{/* Enabled clouds of a type, as a JSON list (templates can only return strings). */}}
{{- define "bursting.cloudsOfType" -}}
{{- $type := index . 1 -}}
{{- $found := list -}}
{{- range $cloud := (index . 0).Values.config.clouds | default list -}}
{{- if and (eq (toString $cloud.type) $type) (ne (toString $cloud.enabled) "false") -}}
{{- $found = append $found $cloud -}}
{{- end -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}

{{/* Namespaces of the Kubernetes clouds reached with the pod's own ServiceAccount (no
     kubeconfig): the chart grants the provider's verbs there, nowhere else. JSON map
     namespace -> list of the pool-token Secret names the clouds there reference. */}}
{{- define "bursting.inClusterTargets" -}}
{{- $targets := dict -}}
{{- range $cloud := include "bursting.cloudsOfType" (list . "kubernetes") | fromJsonArray -}}
{{- $settings := $cloud.kubernetes | default dict -}}
{{- if not $settings.kubeconfig -}}
{{- $ns := $settings.namespace | default $.Release.Namespace -}}
{{- $secrets := get $targets $ns | default list -}}
{{- if $settings.token_secret -}}
{{- $secrets = append $secrets $settings.token_secret | uniq -}}
{{- end -}}
{{- $_ := set $targets $ns $secrets -}}
{{- end -}}
{{- end -}}
{{- toJson $targets -}}
{{- end -}}

{{- define "bursting.poolSecretName" -}}
{{- .Values.secrets.pool.existingSecret | default (printf "%s-pool" (include "bursting.fullname" .)) -}}
{{- end -}}

{{- define "bursting.cloudsYamlSecretName" -}}
{{- .Values.secrets.cloudsYaml.existingSecret | default (printf "%s-clouds-yaml" (include "bursting.fullname" .)) -}}
{{- end -}}

{{/* The controller's config file: the user's `config` with the chart's paths and listen
     address laid over it. Secrets are referenced by path only, never copied here. */}}
{{- define "bursting.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $pool := $cfg.pool | default dict -}}
{{- $_ := set $pool "token_dir" "/etc/bursting/tokens.d" -}}
{{- $_ := set $cfg "pool" $pool -}}
{{- $workers := $cfg.workers | default dict -}}
{{- $_ := set $workers "token" (dict "file" "/etc/bursting/workers/worker.token") -}}
{{- if .Values.secrets.pool.adminKey -}}
{{- $_ := set $workers "admin_key" (dict "file" "/etc/bursting/workers/worker-admin.key") -}}
{{- else -}}
{{- $_ := set $workers "admin_key" nil -}}
{{- end -}}
{{- $_ := set $cfg "workers" $workers -}}
{{- range $cloud := $cfg.clouds | default list -}}
{{- if eq (toString $cloud.type) "openstack" -}}
{{- $settings := $cloud.openstack | default dict -}}
{{- $_ := set $settings "clouds_yaml" "/etc/bursting/openstack/clouds.yaml" -}}
{{- $_ := set $cloud "openstack" $settings -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "store" (dict "url" "sqlite:////var/lib/bursting/state.db") -}}
{{- $_ := set $cfg "metrics" (dict "allow_remote" true "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))) -}}
{{- if include "bursting.leaderElection" . -}}
{{- $_ := set $cfg "leader_election" (dict
      "enabled" true
      "lease_name" (include "bursting.fullname" .)
      "namespace" .Release.Namespace
      "lease_duration_seconds" (int .Values.leaderElection.leaseDurationSeconds)
      "renew_deadline_seconds" (int .Values.leaderElection.renewDeadlineSeconds)
      "retry_period_seconds" (int .Values.leaderElection.retryPeriodSeconds)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Whether the pod talks to the Kubernetes API at all (then it mounts its token). */}}
{{- define "bursting.needsApi" -}}
{{- if or (include "bursting.leaderElection" .) (ne (include "bursting.inClusterTargets" .) "{}") -}}true{{- end -}}
{{- end -}}

{{/* What the Kubernetes provider does in a target namespace (bursting/clouds/kubernetes.py):
     worker pods and their ConfigMaps created, listed by label, read and deleted; the pool
     token Secret read (only the named ones); events listed for why a pod is Pending; the
     ResourceQuota read for headroom. The argument is the list of referenced Secret names. */}}
{{- define "bursting.workerRules" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "get", "list"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "delete", "get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["resourcequotas"]
  verbs: ["get", "list"]
{{- if . }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson . }}
  verbs: ["get"]
{{- end }}
{{- end -}}
