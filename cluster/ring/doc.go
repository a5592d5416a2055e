// Package ring maps tenants to their owner nodes: an immutable rendezvous
// hash over the names of the ready members, swapped in whole on every
// membership change so that lookups take no lock.
//
// It owns the hash and its balance and movement properties (table-tested
// here). It does not know who is alive (package gossip builds the member
// list) or what happens to a tenant whose owner changes (the cluster's
// hand-off).
package ring
