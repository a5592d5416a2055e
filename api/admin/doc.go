// Package admin owns the admin HTTP API's wire format, as its exported
// types (Plan, Tenant, Key, Provider, UsageReport, ...), and a Go client
// for it (Client), which the tollgate command line, the bench and the
// tests share so that the API has one client, not one per caller.
//
// It holds no handlers and no server code: package api serves the API
// and converts between these types and its own. It imports the standard
// library only, so that a program can call a node without linking one.
package admin
