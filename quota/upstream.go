package quota

import "net"

// MetadataAddress reports whether ip is no upstream: a link-local address
// (169.254.0.0/16, fe80::/10), where cloud metadata services answer, or
// such a service's own address outside that range. The admin operations
// and the gateway's dialer refuse the same ones with it.
func MetadataAddress(ip net.IP) bool {
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.Equal(awsMetadataV6)
}

// awsMetadataV6 is the IPv6 address of a cloud metadata service that is
// not link-local.
var awsMetadataV6 = net.ParseIP("fd00:ec2::254")
