// Package dedicated is the controller side of dedicated mode
// (docs/dedicated.md): a proxy Deployment and a load-balancer Service of
// their own for the Ingresses of IngressClasses whose IngressClassConfig
// says mode Dedicated.
//
//   - BuildPlan (pure) finds those Ingresses in a view of the cluster and
//     groups them into units: one per Ingress, or one per torii.dev/group
//     within a namespace and class. It also names the Ingresses the shared
//     proxies must leave alone, and holds the units of classes whose
//     IngressClassConfig is missing or invalid.
//   - Desired (pure) builds a unit's children: ServiceAccount, Role (its
//     own Ingresses by name; Services, EndpointSlices and Secrets of the
//     namespace), RoleBinding, Service, Deployment (`torii serve
//     --only-ingress ...`) and PodDisruptionBudget, all named
//     IngressUnitName/GroupUnitName, labelled, and owned by the Ingresses.
//   - Reconciler runs label-selected informers on the children (every
//     replica) and, on the leader, server-side-applies what differs from
//     its last apply or was changed by someone else, and deletes children
//     no unit wants. Plan.Status gives each dedicated Ingress the address
//     of its own Service.
package dedicated
