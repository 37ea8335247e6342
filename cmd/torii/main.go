package main

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/torii-dev/torii/internal/model"
	_ "github.com/torii-dev/torii/internal/store"
	_ "golang.org/x/net/http2"
	_ "golang.org/x/tools/txtar"
	_ "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/apimachinery/pkg/util/validation"
	_ "sigs.k8s.io/yaml"
)

func main() {}
