package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// freePorts returns n distinct loopback TCP ports that are free right now.
//
// The ports come from below the kernel's ephemeral range when it leaves room:
// the kernel hands ephemeral ports to every outgoing connection and every
// listener on port 0, so a port taken from that range could be grabbed by
// some other socket while the API server is stopped for a restart and must
// bind the same port again. Below the range only explicit binds collide, and
// a collision at start-up is retried with fresh ports.
func freePorts(n int) ([]int, error) {
	lo, hi := portWindow()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for attempts := 0; len(ports) < n; attempts++ {
		addr := "127.0.0.1:0"
		if hi > lo && attempts < 200 {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		}
		// Holding each listener until all are chosen keeps them distinct.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, fmt.Errorf("find a free loopback port: %w", err)
			}
			continue
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portWindow is [lo, hi): the ports below the ephemeral range, starting at
// 10000 to stay clear of well-known services. It is empty when the range is
// unknown or starts too low.
func portWindow() (lo, hi int) {
	const floor = 10000
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(fields[0])
	if err != nil || start-floor < 1000 {
		return 0, 0
	}
	return floor, start
}
