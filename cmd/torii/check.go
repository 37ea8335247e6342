package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/translate"
)

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// checkCommand validates manifests with the same translate code the
// controller runs. Each problem is printed as "<kind> <namespace>/<name>:
// <reason>"; warnings carry a "warning: " prefix on the reason. It exits 1
// when a file does not parse or any object is invalid, 0 otherwise.
func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("torii check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files fileList
	fs.Var(&files, "f", "manifest file to check (repeatable)")
	var cfg translate.Config
	fs.StringVar(&cfg.ControllerName, "controller-name", "torii.dev/ingress-controller", "IngressClass spec.controller value this controller owns")
	fs.StringVar(&cfg.IngressClass, "ingress-class", "torii", "legacy kubernetes.io/ingress.class annotation value this controller owns")
	fs.BoolVar(&cfg.WatchIngressWithoutClass, "watch-ingress-without-class", false, "also check Ingresses that name no class")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: torii check [flags] DIR | torii check [flags] -f FILE [-f FILE...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	paths := append([]string(nil), files...)
	for _, d := range fs.Args() {
		found, err := dir.ListManifests(d)
		if err != nil {
			fmt.Fprintf(stderr, "torii check: %v\n", err)
			return 2
		}
		paths = append(paths, found...)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	objs, fileErrs := dir.ReadFiles(paths)
	failed := len(fileErrs) > 0
	for _, e := range fileErrs {
		fmt.Fprintln(stdout, e.Error())
	}
	res := translate.Build(cfg, objs)
	for _, p := range res.Problems {
		if p.Severity == translate.SeverityError {
			failed = true
			fmt.Fprintln(stdout, p.String())
			continue
		}
		fmt.Fprintf(stdout, "%s: warning: %s\n", p.Object.String(), p.Message)
	}
	if failed {
		return 1
	}
	fmt.Fprintf(stderr, "torii check: %d file(s), %d Ingress(es) owned, no invalid objects\n", len(paths), len(res.Owned))
	return 0
}
