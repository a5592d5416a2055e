package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
)

// jsonObject is a JSON object as the server sent it. Commands that change a
// record edit one of these rather than a struct of the fields they know,
// so that PUTting it back keeps fields a newer server added.
type jsonObject map[string]json.RawMessage

// set stores v, which the flag parsers below have made encodable.
func (o jsonObject) set(field string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("field %s: %v", field, err))
	}
	o[field] = b
}

// fieldFlags binds flags that each set one field of patch when given, so a
// command changes only what the flags name, and can tell a flag given as 0
// from one not given.
type fieldFlags struct {
	fs    *flag.FlagSet
	patch jsonObject
}

func newFieldFlags(fs *flag.FlagSet) fieldFlags { return fieldFlags{fs, jsonObject{}} }

func (f fieldFlags) int(name, field, usage string) {
	f.fs.Func(name, usage, func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("not a whole number")
		}
		f.patch.set(field, n)
		return nil
	})
}

func (f fieldFlags) string(name, field, usage string) {
	f.fs.Func(name, usage, func(s string) error {
		f.patch.set(field, s)
		return nil
	})
}

// list takes a comma-separated list; an empty one clears the field.
func (f fieldFlags) list(name, field, usage string) {
	f.fs.Func(name, usage, func(s string) error {
		var items commaList
		_ = items.Set(s) // never fails
		if items == nil {
			items = commaList{} // an empty list, not null
		}
		f.patch.set(field, items)
		return nil
	})
}

func (f fieldFlags) price(name, field, usage string) {
	f.fs.Func(name, usage, func(s string) error {
		p, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
			return errors.New("not a number of dollars")
		}
		f.patch.set(field, p)
		return nil
	})
}

// limits binds the flags of a plan's limits, which a tenant's overrides
// share.
func (f fieldFlags) limits() {
	f.int("rpm", "requests_per_minute", "at most `N` requests a minute (0: no limit)")
	f.int("tpm", "tokens_per_minute", "at most `N` tokens a minute (0: no limit)")
	f.int("tokens-per-month", "tokens_per_month", "at most `N` tokens a calendar month (0: no limit)")
	f.int("max-concurrent", "max_concurrent", "at most `N` requests in flight at once (0: no limit)")
	f.int("priority", "priority", "priority `N`, lower goes first")
	f.string("failure-policy", "failure_policy", "`POLICY` for when the tenant's owner is unreachable: local, open or closed")
}
