package status

import (
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func ip(s string) networkingv1.IngressLoadBalancerIngress {
	return networkingv1.IngressLoadBalancerIngress{IP: s}
}

func host(s string) networkingv1.IngressLoadBalancerIngress {
	return networkingv1.IngressLoadBalancerIngress{Hostname: s}
}

func TestParseStatusAddresses(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []networkingv1.IngressLoadBalancerIngress
		wantErr string
	}{
		{name: "empty", in: nil, want: nil},
		{name: "blanks only", in: []string{"", " , "}, want: nil},
		{name: "ip and hostname", in: []string{"192.0.2.10,lb.example.com"}, want: []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.10"), host("lb.example.com")}},
		{name: "repeated flag and spaces", in: []string{" 192.0.2.10 ", "2001:db8::1"}, want: []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.10"), ip("2001:db8::1")}},
		{name: "ipv6 canonical", in: []string{"2001:DB8:0:0::1"}, want: []networkingv1.IngressLoadBalancerIngress{ip("2001:db8::1")}},
		{name: "ipv4-mapped unmapped", in: []string{"::ffff:192.0.2.1"}, want: []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}},
		{name: "duplicates dropped", in: []string{"192.0.2.10,192.0.2.10", "lb.example.com"}, want: []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.10"), host("lb.example.com")}},
		{name: "hostname lowered, trailing dot", in: []string{"LB.Example.COM."}, want: []networkingv1.IngressLoadBalancerIngress{host("lb.example.com")}},
		{name: "leading zero ip", in: []string{"192.0.2.010"}, wantErr: "neither a valid IP"},
		{name: "short ip", in: []string{"10.1"}, wantErr: "neither a valid IP"},
		{name: "zone", in: []string{"fe80::1%eth0"}, wantErr: "zone"},
		{name: "bad hostname", in: []string{"lb_example.com"}, wantErr: "neither an IP address nor a DNS name"},
		{name: "url", in: []string{"http://lb.example.com"}, wantErr: "neither an IP address nor a DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatusAddresses(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSameAddresses(t *testing.T) {
	tcp := func(port int32, errMsg ...string) networkingv1.IngressPortStatus {
		p := networkingv1.IngressPortStatus{Port: port, Protocol: "TCP"}
		if len(errMsg) > 0 {
			p.Error = &errMsg[0]
		}
		return p
	}
	withPorts := func(a networkingv1.IngressLoadBalancerIngress, ports ...networkingv1.IngressPortStatus) networkingv1.IngressLoadBalancerIngress {
		a.Ports = ports
		return a
	}
	tests := []struct {
		name string
		a, b []networkingv1.IngressLoadBalancerIngress
		want bool
	}{
		{"nil and empty", nil, []networkingv1.IngressLoadBalancerIngress{}, true},
		{"order", []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1"), host("a.example")}, []networkingv1.IngressLoadBalancerIngress{host("a.example"), ip("192.0.2.1")}, true},
		{"port order", []networkingv1.IngressLoadBalancerIngress{withPorts(ip("192.0.2.1"), tcp(80), tcp(443))}, []networkingv1.IngressLoadBalancerIngress{withPorts(ip("192.0.2.1"), tcp(443), tcp(80))}, true},
		{"ports differ", []networkingv1.IngressLoadBalancerIngress{withPorts(ip("192.0.2.1"), tcp(80))}, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}, false},
		{"port error differs", []networkingv1.IngressLoadBalancerIngress{withPorts(ip("192.0.2.1"), tcp(80, "x"))}, []networkingv1.IngressLoadBalancerIngress{withPorts(ip("192.0.2.1"), tcp(80))}, false},
		{"ip vs hostname", []networkingv1.IngressLoadBalancerIngress{ip("a")}, []networkingv1.IngressLoadBalancerIngress{host("a")}, false},
		{"length", []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1"), ip("192.0.2.1")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SameAddresses(tt.a, tt.b); got != tt.want {
				t.Errorf("SameAddresses = %v, want %v", got, tt.want)
			}
			if got := SameAddresses(tt.b, tt.a); got != tt.want {
				t.Errorf("SameAddresses (swapped) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("héllo", 2); got != "h" {
		t.Errorf("truncate split a rune: %q", got)
	}
	if got := truncate("hello", 10); got != "hello" {
		t.Errorf("truncate changed a short string: %q", got)
	}
	if got := truncate("hello", 3); got != "hel" {
		t.Errorf("truncate = %q", got)
	}
}
