package status

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// parseAddress turns one --publish-status-address entry into a status
// entry: an IP when it parses as one, else a DNS hostname. IPs are written
// in canonical form because the API server's strict IP validation rejects
// forms such as leading zeros, and because the writer compares entries as
// strings.
func parseAddress(s string) (networkingv1.IngressLoadBalancerIngress, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return networkingv1.IngressLoadBalancerIngress{}, fmt.Errorf("address %q: an IPv6 zone cannot be published", s)
		}
		return networkingv1.IngressLoadBalancerIngress{IP: ip.Unmap().String()}, nil
	}
	// Something that looks like an IP but did not parse (1.2.3.04, 1.2.3)
	// is a typo, not a hostname: the API server refuses IPs as hostnames.
	if looksNumeric(s) {
		return networkingv1.IngressLoadBalancerIngress{}, fmt.Errorf("address %q is neither a valid IP address nor a DNS name", s)
	}
	host := strings.ToLower(strings.TrimSuffix(s, "."))
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return networkingv1.IngressLoadBalancerIngress{}, fmt.Errorf("address %q is neither an IP address nor a DNS name: %s", s, strings.Join(errs, "; "))
	}
	return networkingv1.IngressLoadBalancerIngress{Hostname: host}, nil
}

// looksNumeric reports whether s holds only digits, dots and colons, i.e.
// an attempt at an IP address.
func looksNumeric(s string) bool {
	return strings.Trim(s, "0123456789.:") == ""
}

// ParseStatusAddresses parses --publish-status-address values. Each value
// may itself be comma-separated; blanks are ignored and duplicates dropped,
// keeping the first occurrence's order.
func ParseStatusAddresses(values []string) ([]networkingv1.IngressLoadBalancerIngress, error) {
	var out []networkingv1.IngressLoadBalancerIngress
	seen := map[string]bool{}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, err := parseAddress(part)
			if err != nil {
				return nil, err
			}
			if k := entryKey(a); !seen[k] {
				seen[k] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// entryKey is a canonical string for one status entry: equal keys mean
// entries that mean the same thing, whatever the order of their ports.
func entryKey(a networkingv1.IngressLoadBalancerIngress) string {
	var b strings.Builder
	b.WriteString(a.IP)
	b.WriteByte('|')
	b.WriteString(a.Hostname)
	ports := make([]string, 0, len(a.Ports))
	for _, p := range a.Ports {
		e := ""
		if p.Error != nil {
			e = *p.Error
		}
		ports = append(ports, strconv.Itoa(int(p.Port))+"/"+string(p.Protocol)+"/"+e)
	}
	slices.Sort(ports)
	for _, p := range ports {
		b.WriteByte('|')
		b.WriteString(p)
	}
	return b.String()
}

// statusKeys returns the sorted entry keys of a status list.
func statusKeys(list []networkingv1.IngressLoadBalancerIngress) []string {
	keys := make([]string, len(list))
	for i, a := range list {
		keys[i] = entryKey(a)
	}
	slices.Sort(keys)
	return keys
}

// SameAddresses reports whether two status lists say the same thing,
// ignoring order (of entries and of ports) and nil versus empty. Writers
// that compare order-sensitively keep rewriting a status another writer
// merely reordered.
func SameAddresses(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	if len(a) != len(b) {
		return false
	}
	return slices.Equal(statusKeys(a), statusKeys(b))
}

// cloneAddresses deep-copies a status list so callers may keep or modify
// what they are given.
func cloneAddresses(list []networkingv1.IngressLoadBalancerIngress) []networkingv1.IngressLoadBalancerIngress {
	if list == nil {
		return nil
	}
	out := make([]networkingv1.IngressLoadBalancerIngress, len(list))
	for i := range list {
		list[i].DeepCopyInto(&out[i])
	}
	return out
}

// withoutEntries returns list minus every entry whose key is in drop, and
// whether anything was removed.
func withoutEntries(list []networkingv1.IngressLoadBalancerIngress, drop map[string]bool) ([]networkingv1.IngressLoadBalancerIngress, bool) {
	var out []networkingv1.IngressLoadBalancerIngress
	removed := false
	for _, a := range list {
		if drop[entryKey(a)] {
			removed = true
			continue
		}
		out = append(out, *a.DeepCopy())
	}
	return out, removed
}

// ServiceAddresses copies a Service's status.loadBalancer.ingress into
// Ingress status entries, ports included (the Service's ipMode has no
// Ingress counterpart).
func ServiceAddresses(svc *corev1.Service) []networkingv1.IngressLoadBalancerIngress {
	return serviceAddresses(svc)
}
