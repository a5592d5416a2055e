package cluster

import "net"

// Advertise turns a listener's address into one others can dial: an
// unspecified host (0.0.0.0, ::) becomes the gossip host if that is
// specific, else this machine's first non-loopback address.
func Advertise(addr, gossip string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	if gh, _, err := net.SplitHostPort(gossip); err == nil {
		if ip := net.ParseIP(gh); ip != nil && !ip.IsUnspecified() {
			return net.JoinHostPort(gh, port)
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return net.JoinHostPort(ipn.IP.String(), port)
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}
