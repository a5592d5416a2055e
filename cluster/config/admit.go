package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// Commands are validated again where they are applied. The admin
// operations check them before they are written, but a command can reach
// the log by another way (a peer that skipped the checks), and what a
// replica applies must not depend on who wrote it. The checks are the
// admin operations' own, so a command that passed them when it was written
// passes them here, on every replica alike: they stay deterministic. (A
// rule added later must hold for what earlier versions wrote, or a replica
// replaying an old log would refuse what the others applied: negative
// usage amounts are dropped where they are added, as they always were.)

// maxSeqLead bounds how far a usage flush's sequence may run ahead of the
// time its entry was appended. A node numbers its flushes from its start
// time in nanoseconds, one a flush, so an honest sequence is never ahead;
// one far ahead (2^64-1) would make every later flush of that node a
// repeat, dropped.
const maxSeqLead = 24 * time.Hour

// refusal is why cmd must not be applied to v, or nil. appended is when
// the leader appended the entry (zero if unknown).
func refusal(cmd *configv1.Command, v *View, appended time.Time) *configv1.Result {
	var err error
	switch op := cmd.Op.(type) {
	case *configv1.Command_PutPlan:
		err = ValidatePlan(op.PutPlan)
	case *configv1.Command_PutTenant:
		err = ValidateTenant(op.PutTenant, v)
	case *configv1.Command_PutProvider:
		err = ValidateProvider(op.PutProvider)
	case *configv1.Command_CreateKey:
		err = validateKey(op.CreateKey)
	case *configv1.Command_PutRlsDomain:
		err = ValidateRLSDomain(op.PutRlsDomain)
	case *configv1.Command_SeedPlans:
		for i, p := range op.SeedPlans.GetPlans() {
			if err = ValidatePlan(p); err != nil {
				err = fmt.Errorf("plans[%d].%w", i, err)
				break
			}
		}
	case *configv1.Command_RecordUsage:
		err = validateUsage(op.RecordUsage, appended)
	}
	if err != nil {
		return fail(InvalidArgument, "%v", err)
	}
	return nil
}

func validateKey(k *configv1.APIKey) error {
	if !strings.HasPrefix(k.GetId(), "tg_") || len(k.GetId()) != keyIDLen {
		return quota.Invalid("id", "%q is not a key id (tg_ and 8 characters)", k.GetId())
	}
	if k.GetName() != "" {
		if err := quota.CheckText("name", k.GetName(), 128); err != nil {
			return err
		}
	}
	return nil
}

func validateUsage(u *configv1.RecordUsage, appended time.Time) error {
	if err := quota.CheckText("node", u.GetNode(), quota.MaxNameLen); err != nil {
		return err
	}
	if !appended.IsZero() && u.GetSeq() > uint64(appended.Add(maxSeqLead).UnixNano()) {
		return quota.Invalid("seq", "%d runs ahead of the time the flush was written", u.GetSeq())
	}
	for i, d := range u.GetDeltas() {
		field := func(f string) string { return fmt.Sprintf("deltas[%d].%s", i, f) }
		if err := quota.ValidateTenant(fmt.Sprintf("deltas[%d].", i), d.GetTenant()); err != nil {
			return err
		}
		if d.GetModel() != "" {
			if err := quota.CheckText(field("model"), d.GetModel(), 256); err != nil {
				return err
			}
		}
		if _, err := time.Parse("2006-01-02", d.GetDay()); err != nil {
			return quota.Invalid(field("day"), "%q is not a date (YYYY-MM-DD)", d.GetDay())
		}
	}
	return nil
}

// satAdd adds two amounts >= 0, stopping at the largest rather than
// wrapping to a negative total.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
