package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// show prints the answer raw: indented with -o json; otherwise decoded
// into v (unless nil) for table to print.
func (a *adminSession) show(raw json.RawMessage, v any, table func(t *textTable)) error {
	if a.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := a.out.Write(buf.Bytes())
		return err
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("unexpected answer from %s: %w", a.client.URL(), err)
		}
	}
	t := &textTable{tw: tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)}
	table(t)
	return t.tw.Flush()
}

// textTable prints aligned columns. An empty row ends a block of columns, so
// the tables of one answer align each on its own.
type textTable struct{ tw *tabwriter.Writer }

func (t *textTable) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		// A name with a tab or a newline in it must not break the columns.
		fmt.Fprint(t.tw, strings.Map(func(r rune) rune {
			if r < ' ' {
				return ' '
			}
			return r
		}, fmt.Sprint(c)))
	}
	fmt.Fprint(t.tw, "\n")
}

// Cells. A dash is "none": no limit, no list, no time.

func limitCell(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func listCell(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func timeCell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func textCell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
