package quota

import "net"

// MetadataAddress reports whether ip is no upstream: a link-local address
// (169.254.0.0/16, fe80::/10), where cloud metadata services answer, or
// such a service's own address outside that range. An IPv6 address that
// carries an IPv4 one (IPv4-mapped or -compatible, NAT64, 6to4) is judged
// by the address it carries, since a gateway translates it there. The
// admin operations and the gateway's dialer refuse the same ones with it.
func MetadataAddress(ip net.IP) bool {
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.Equal(awsMetadataV6) {
		return true
	}
	if v4 := embeddedIPv4(ip); v4 != nil {
		return v4.IsLinkLocalUnicast()
	}
	return false
}

// embeddedIPv4 is the IPv4 address an IPv6 address carries by one of the
// translation schemes that reach IPv4 hosts, or nil.
func embeddedIPv4(ip net.IP) net.IP {
	ip16 := ip.To16()
	if ip16 == nil || ip.To4() != nil {
		return nil // IPv4, or IPv4-mapped (which IsLinkLocalUnicast judges already)
	}
	for _, p := range embeddingPrefixes {
		if p.Contains(ip16) {
			return net.IP(ip16[p.at : p.at+4])
		}
	}
	return nil
}

// embeddingPrefixes are the IPv6 ranges whose addresses carry an IPv4
// address, and where in the 16 bytes it sits.
var embeddingPrefixes = []struct {
	*net.IPNet
	at int
}{
	{mustCIDR("64:ff9b::/96"), 12},   // NAT64, well-known prefix (RFC 6052)
	{mustCIDR("64:ff9b:1::/48"), 12}, // NAT64, local use (RFC 8215)
	{mustCIDR("::/96"), 12},          // IPv4-compatible (deprecated, still routed by some stacks)
	{mustCIDR("2002::/16"), 2},       // 6to4 (RFC 3056)
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// awsMetadataV6 is the IPv6 address of a cloud metadata service that is
// not link-local.
var awsMetadataV6 = net.ParseIP("fd00:ec2::254")
