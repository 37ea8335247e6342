package status

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestLastReplicaFake(t *testing.T) {
	ctx := context.Background()
	self := readyPod("torii-system", "torii-a", "n1", map[string]string{"app": "torii", "pod-template-hash": "new"})
	other := readyPod("torii-system", "torii-b", "n2", map[string]string{"app": "torii", "pod-template-hash": "old"})
	web := readyPod("torii-system", "web", "n2", map[string]string{"app": "web"})

	last, err := LastReplica(ctx, fake.NewClientset(self, web), "torii-system", "torii-a")
	if err != nil || !last {
		t.Errorf("alone: last=%v err=%v, want true", last, err)
	}
	last, err = LastReplica(ctx, fake.NewClientset(self, other), "torii-system", "torii-a")
	if err != nil || last {
		t.Errorf("with a ready replica of another revision: last=%v err=%v, want false", last, err)
	}
	unready := other.DeepCopy()
	unready.Status.Conditions = nil
	last, err = LastReplica(ctx, fake.NewClientset(self, unready), "torii-system", "torii-a")
	if err != nil || !last {
		t.Errorf("with an unready replica: last=%v err=%v, want true", last, err)
	}
	bare := readyPod("torii-system", "torii-a", "n1", nil)
	if _, err := LastReplica(ctx, fake.NewClientset(bare), "torii-system", "torii-a"); err == nil || !strings.Contains(err.Error(), "no labels") {
		t.Errorf("unlabelled pod: err = %v", err)
	}
	if _, err := LastReplica(ctx, fake.NewClientset(), "torii-system", "torii-a"); err == nil {
		t.Error("missing own pod: no error")
	}
}
