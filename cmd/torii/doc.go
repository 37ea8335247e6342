// Command torii is a Kubernetes Ingress controller with its own Go data
// plane.
//
//	torii serve --manifests DIR   serve Ingress objects from a directory of YAML
//	torii check DIR | -f FILE     validate objects offline, as the controller would
//	torii demo                    serve the embedded example with demo backends
//	torii version                 print the version
package main
