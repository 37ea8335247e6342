// Package controller turns views of Kubernetes objects into live routing:
// it runs the pure translator, guards the result, and swaps it into the data
// plane, keeping the last good snapshot when a build fails.
package controller
