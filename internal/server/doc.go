// Package server wires Torii's parts into the `torii serve` process: an
// object source feeding the controller, the data plane behind the client
// listeners, and the admin endpoints.
package server
