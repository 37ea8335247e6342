package dedicated

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestUnitNames(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name, got, prefix string
	}{
		{"plain", IngressUnitName("shop", "web"), "torii-web-"},
		{"dots become dashes", IngressUnitName("shop", "www.example.com"), "torii-www-example-com-"},
		{"truncated", IngressUnitName("shop", long), "torii-" + strings.Repeat("a", 48) + "-"},
		{"group", GroupUnitName("shop", "dedicated", "storefront"), "torii-storefront-"},
		{"trailing dash trimmed", IngressUnitName("shop", strings.Repeat("a", 47)+".b"), "torii-" + strings.Repeat("a", 47) + "-"},
		{"nothing usable", GroupUnitName("shop", "c", "..."), "torii-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasPrefix(tc.got, tc.prefix) {
				t.Errorf("%q does not start with %q", tc.got, tc.prefix)
			}
			if errs := validation.IsDNS1035Label(tc.got); len(errs) > 0 {
				t.Errorf("%q is not a DNS-1035 label: %v", tc.got, errs)
			}
			hash := tc.got[strings.LastIndex(tc.got, "-")+1:]
			if len(hash) != 8 || strings.Trim(hash, "0123456789abcdef") != "" {
				t.Errorf("%q does not end in -<hash8>", tc.got)
			}
			if strings.Contains(tc.got, "--") && tc.name != "dots become dashes" {
				t.Errorf("%q has an empty segment", tc.got)
			}
		})
	}
	if a, b := IngressUnitName("shop", "web"), IngressUnitName("shop", "web"); a != b {
		t.Errorf("not deterministic: %q, %q", a, b)
	}
	distinct := []string{
		IngressUnitName("shop", "web"),
		IngressUnitName("shop2", "web"),
		IngressUnitName("shop", long+"1"),
		IngressUnitName("shop", long+"2"),
		GroupUnitName("shop", "dedicated", "web"),
		GroupUnitName("shop", "other-class", "web"),
		GroupUnitName("shop2", "dedicated", "web"),
	}
	seen := map[string]int{}
	for i, n := range distinct {
		if j, dup := seen[n]; dup {
			t.Errorf("names %d and %d collide: %q", j, i, n)
		}
		seen[n] = i
	}
	if ControllerHash("a") == ControllerHash("b") || len(ControllerHash("a")) != 8 {
		t.Errorf("ControllerHash: %q %q", ControllerHash("a"), ControllerHash("b"))
	}
}
