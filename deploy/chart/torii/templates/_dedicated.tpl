{{/*
Dedicated mode: the writes on the children of dedicated Ingresses, in their
namespaces. Granted cluster-wide by the ClusterRole "<fullname>-dedicated",
or by a Role in each of controller.watchNamespaces. Keep in step with
deploy/dedicated.yaml (go test ./deploy compares both with
internal/dedicated.ControllerRules).
*/}}
{{- define "torii.dedicatedNamespacedRules" -}}
# Created and repaired by server-side apply (patch), deleted when the
# Ingress is gone or no longer Dedicated; read by label-selected informers.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# blockOwnerDeletion on the children's ownerReferences (clusters running the
# OwnerReferencesPermissionEnforcement admission plugin).
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses/finalizers"]
  verbs: ["update"]
{{- end -}}
