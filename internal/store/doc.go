// Package store holds the Kubernetes objects Torii's sources have seen and
// hands out consistent, read-only views of them to the translator.
package store
