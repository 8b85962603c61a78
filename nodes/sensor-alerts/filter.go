// Filter: keep only readings that make sense, as typed records.
//
// Each raw record from the ingest step is checked: it must name a known
// metric and a sensor, carry a finite number within the metric's physical
// range and a proper timestamp. What passes becomes
//
//	{"sensor_id": "alpha", "metric": "temperature", "value": 24.5, "unit": "°C",
//	 "ts": "2026-11-26T10:00:00Z", "line": 17}
//
// (plus "sent_at" for live readings that carry their send time)
//
// and everything else is counted by reason and left out.
package main

import (
	"fmt"
	"log"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"pipeloom.local/pipeloom"
)

type rawEvent struct {
	Line     int64  `json:"line"`
	Metric   string `json:"metric"`
	Value    string `json:"value"`
	SensorID string `json:"sensor_id"`
	TS       string `json:"ts"`
	SentAt   string `json:"sent_at"`
	Error    string `json:"error"`
}

type event struct {
	SensorID string  `json:"sensor_id"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	TS       string  `json:"ts"`
	Line     int64   `json:"line"`
	SentAt   int64   `json:"sent_at,omitempty"` // live readings: when the gateway sent it (ms since 1970)
}

type metricRule struct {
	Unit string  `json:"unit"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

type params struct {
	Metrics map[string]metricRule `json:"metrics"`
}

// check turns a raw record into a typed event, or names the reason to drop it.
func check(r rawEvent, rules map[string]metricRule) (event, string) {
	if r.Error != "" {
		return event{}, "unreadable line"
	}
	rule, known := rules[r.Metric]
	if !known {
		return event{}, "unknown metric"
	}
	if r.SensorID == "" {
		return event{}, "no sensor id"
	}
	if strings.TrimSpace(r.Value) == "" {
		return event{}, "no value"
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(r.Value), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return event{}, "value is not a number"
	}
	if v < rule.Min || v > rule.Max {
		return event{}, "value outside the physical range"
	}
	ts, err := time.Parse(time.RFC3339, r.TS)
	if err != nil {
		return event{}, "bad or missing timestamp"
	}
	sent, _ := strconv.ParseInt(r.SentAt, 10, 64) // absent in logs read from a file
	return event{r.SensorID, r.Metric, v, rule.Unit, ts.UTC().Format(time.RFC3339), r.Line, sent}, ""
}

func main() {
	p := params{Metrics: map[string]metricRule{
		"temperature": {"°C", -40, 85},
		"humidity":    {"%", 0, 100},
		"pressure":    {"hPa", 800, 1100},
	}}
	if err := pipeloom.Params(&p); err != nil {
		log.Fatal(err)
	}

	out, err := pipeloom.NewRecordWriter("events")
	if err != nil {
		log.Fatal(err)
	}
	dropped := map[string]int{}
	total := 0
	err = pipeloom.EachRecord("raw_events", func(r rawEvent) error {
		total++
		ev, reason := check(r, p.Metrics)
		if reason != "" {
			dropped[reason]++
			// one line per dropped record, in the form Pipeloom's diff reads its reasons from
			fmt.Printf("dropped line=%d: %s\n", r.Line, reason)
			return nil
		}
		return out.Write(ev)
	})
	if err != nil {
		out.Abort()
		log.Fatal(err)
	}
	if err := out.Close(); err != nil {
		log.Fatal(err)
	}

	reasons := make([]string, 0, len(dropped))
	for reason, n := range dropped {
		reasons = append(reasons, fmt.Sprintf("%s: %d", reason, n))
	}
	sort.Strings(reasons)
	fmt.Printf("filter: kept %d of %d records, dropped %d (%s)\n",
		out.Count(), total, total-out.Count(), strings.Join(reasons, ", "))
}
