package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// BinDirEnv overrides where the harness looks for kube-apiserver and etcd.
// With it set the harness trusts the binaries as they are and does not check
// bin/.tools-stamp (they may come from a release download or envtest).
const BinDirEnv = "TORII_E2E_BIN_DIR"

// buildHint is what every binary problem tells the reader to run.
const buildHint = "run ./hack/e2e-tools.sh from the repository root (it builds bin/kube-apiserver and bin/etcd from hack/tools; a few minutes cold, seconds when cached)"

// stampInputs are the files whose SHA-256 hack/e2e-tools.sh records in
// bin/.tools-stamp; keep the list and its order in sync with the script.
var stampInputs = []string{"hack/tools/go.mod", "hack/tools/go.sum", "hack/tools/etcd/main.go"}

// binaries are the paths of the control-plane executables.
type binaries struct {
	etcd, apiserver string
}

// findBinaries locates the executables: dir if given, else $TORII_E2E_BIN_DIR,
// else bin/ at the repository root above the working directory (go test runs
// each package in its own directory). Binaries from bin/ must match the
// pinned versions in hack/tools, so a test never runs against a stale
// control plane without saying so.
func findBinaries(dir string) (binaries, error) {
	checkStamp := false
	root := ""
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		var err error
		root, err = repoRoot()
		if err != nil {
			return binaries{}, err
		}
		dir = filepath.Join(root, "bin")
		checkStamp = true
	}
	b := binaries{etcd: filepath.Join(dir, "etcd"), apiserver: filepath.Join(dir, "kube-apiserver")}
	for _, p := range []string{b.etcd, b.apiserver} {
		fi, err := os.Stat(p)
		if err != nil {
			return binaries{}, fmt.Errorf("e2e control plane binary %s is missing: %s", p, buildHint)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return binaries{}, fmt.Errorf("e2e control plane binary %s is not executable: %s", p, buildHint)
		}
	}
	if checkStamp {
		if err := verifyStamp(root, filepath.Join(dir, ".tools-stamp")); err != nil {
			return binaries{}, err
		}
	}
	return b, nil
}

// verifyStamp compares the recorded hash with the current hack/tools inputs.
func verifyStamp(root, stampPath string) error {
	h := sha256.New()
	for _, rel := range stampInputs {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return fmt.Errorf("read %s to check the e2e binaries: %w", rel, err)
		}
		h.Write(data)
	}
	want := hex.EncodeToString(h.Sum(nil))
	have, err := os.ReadFile(stampPath)
	if err != nil {
		return fmt.Errorf("%s is missing, so the e2e binaries' versions are unknown: %s", stampPath, buildHint)
	}
	if got := string(bytes.TrimSpace(have)); got != want {
		return fmt.Errorf("e2e binaries are stale (hack/tools changed since they were built: stamp %.12s, inputs %.12s): %s", got, want, buildHint)
	}
	return nil
}

// repoRoot walks up from the working directory to the directory holding
// hack/e2e-tools.sh and the main module's go.mod.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if isFile(filepath.Join(dir, "go.mod")) && isFile(filepath.Join(dir, "hack", "e2e-tools.sh")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (go.mod next to hack/e2e-tools.sh) above " + wd + "; set " + BinDirEnv + " to the directory holding kube-apiserver and etcd")
		}
		dir = parent
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
