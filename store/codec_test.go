package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

var timeType = reflect.TypeFor[time.Time]()

// filled returns an incident with every field, at every depth, set to a
// distinct non-zero value. A field added to rules.Incident or event.Event
// later is filled too, so the round-trip tests fail until the codec and
// the fast JSON writer learn it.
func filled() rules.Incident {
	var inc rules.Incident
	n := 0
	fill(reflect.ValueOf(&inc).Elem(), &n)
	inc.Severity = rules.SeverityHigh // the JSON form needs a known name
	return inc
}

func fill(v reflect.Value, n *int) {
	*n++
	if v.Type() == timeType {
		zone := time.FixedZone("", (*n%5-2)*3600)
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n*1000+7, zone)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d-%s", *n, v.Type().Name()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n) * -3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n) * 3)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// sameValue compares like reflect.DeepEqual, except that times are equal
// when they are the same instant with the same zone offset (which is what
// their JSON form shows).
func sameValue(a, b reflect.Value, path string) error {
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		_, oa := ta.Zone()
		_, ob := tb.Zone()
		if !ta.Equal(tb) || oa != ob {
			return fmt.Errorf("%s: %v != %v", path, ta, tb)
		}
		return nil
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if err := sameValue(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Errorf("%s: nil mismatch", path)
			}
			return nil
		}
		return sameValue(a.Elem(), b.Elem(), path)
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Errorf("%s: length %d != %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if err := sameValue(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Errorf("%s: %#v != %#v", path, a.Interface(), b.Interface())
	}
	return nil
}

func sameIncident(t *testing.T, got, want rules.Incident) {
	t.Helper()
	if err := sameValue(reflect.ValueOf(got), reflect.ValueOf(want), "Incident"); err != nil {
		t.Error(err)
	}
}

func roundTrip(t *testing.T, inc rules.Incident) rules.Incident {
	t.Helper()
	var e encoder
	val := e.encodeIncident(nil, &inc)
	var got rules.Incident
	if err := decodeIncident(inc.ID.Bytes(), val, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return got
}

// before1970 builds an incident raised before the epoch. Its ID is set by
// hand: rules.NewID would turn the negative time into an id beyond every
// later one in this test binary.
func before1970() rules.Incident {
	at := time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)
	inc := fixture(baseTime, 8)
	inc.ID = 77
	inc.Time, inc.FirstSeen, inc.LastSeen, inc.Process.Time = at, at, at, at
	return inc
}

func TestCodecRoundTrip(t *testing.T) {
	hostile := fixture(baseTime, 3)
	hostile.Process.Exe = "/tmp/\xff\xfe/ev\x00il\x1b[31m"
	hostile.Process.Args = []event.Text{"", "\x80\x81", "a\u2028b", "<script>&", ""}
	hostile.Process.Comm = "\xc3"
	hostile.Process.Ancestors[0].Exe = "/bin/\xe2\x82"

	escalation := fixture(baseTime, 4)
	escalation.Process.Type = event.TypeEscalation
	escalation.Process.Method = event.MethodSetuid
	escalation.Process.OldUID, escalation.Process.NewUID = event.Uint32(1000), event.Uint32(0)
	escalation.Process.OldEUID, escalation.Process.NewEUID = event.Uint32(0), event.Uint32(0)

	exit := fixture(baseTime, 5)
	exit.Process.Type = event.TypeExit
	exit.Process.ExitCode = event.Int(0)
	exit.Process.Signal = "SIGSEGV"
	exit.Process.CoreDumped = true
	exit.Process.DurationNS = -5

	local := fixture(time.Date(2026, 7, 1, 8, 0, 0, 1, time.Local), 6)
	zoned := fixture(time.Date(2026, 7, 1, 8, 0, 0, 1, time.FixedZone("X", -(9*3600+30*60))), 7)

	cases := map[string]rules.Incident{
		"every field set":   filled(),
		"realistic":         fixture(baseTime, 1),
		"hostile bytes":     hostile,
		"escalation uid 0":  escalation,
		"exit code 0":       exit,
		"local time":        local,
		"fixed zone":        zoned,
		"zero value":        {ID: 1},
		"before 1970":       before1970(),
		"acknowledged rare": func() rules.Incident { i := fixture(baseTime, 9); i.Status = rules.StatusAcknowledged; return i }(),
	}
	for name, inc := range cases {
		t.Run(name, func(t *testing.T) {
			sameIncident(t, roundTrip(t, inc), inc)
		})
	}
}

func TestCodecSize(t *testing.T) {
	inc := fixture(baseTime, 1)
	var e encoder
	val := e.encodeIncident(nil, &inc)
	js, _ := json.Marshal(inc)
	t.Logf("record %d bytes, JSON %d bytes", len(val), len(js))
	if len(val) >= len(js)*3/4 {
		t.Errorf("record is %d bytes, JSON %d: the compact form should be well under JSON", len(val), len(js))
	}
}

func TestCodecRejectsDamage(t *testing.T) {
	inc := fixture(baseTime, 1)
	var e encoder
	val := e.encodeIncident(nil, &inc)
	key := inc.ID.Bytes()
	// Every truncation either decodes to a prefix of the fields or fails
	// cleanly; none may panic.
	failures := 0
	for n := range len(val) {
		var got rules.Incident
		if decodeIncident(key, val[:n], &got) != nil {
			failures++
		}
	}
	if failures == 0 {
		t.Error("no truncation was reported as damage")
	}
	var got rules.Incident
	if err := decodeIncident(key[:4], val, &got); err == nil {
		t.Error("short key accepted")
	}
	bad := append(bytes.Clone(val), 0x12, 0xff) // field 2 (time), length 255, missing bytes
	if err := decodeIncident(key, bad, &got); err == nil {
		t.Error("truncated trailing field accepted")
	}
}

func TestCodecSkipsUnknownFields(t *testing.T) {
	inc := fixture(baseTime, 1)
	var e encoder
	val := e.encodeIncident(nil, &inc)
	// Field 99 as varint, field 98 as bytes, field 97 as fixed64: a newer
	// writer's additions.
	val = append(val, 0x98, 0x06, 0x2a)
	val = append(val, 0x92, 0x06, 0x03, 'a', 'b', 'c')
	val = append(val, 0x89, 0x06, 1, 2, 3, 4, 5, 6, 7, 8)
	var got rules.Incident
	if err := decodeIncident(inc.ID.Bytes(), val, &got); err != nil {
		t.Fatalf("decode with unknown fields: %v", err)
	}
	sameIncident(t, got, inc)
}

func FuzzDecodeIncident(f *testing.F) {
	var e encoder
	for i := range 4 {
		inc := fixture(baseTime, i)
		f.Add(e.encodeIncident(nil, &inc))
	}
	f.Fuzz(func(t *testing.T, val []byte) {
		var inc rules.Incident
		if decodeIncident(make([]byte, 8), val, &inc) != nil {
			return
		}
		// Whatever decodes must encode and decode to the same incident.
		again := e.encodeIncident(nil, &inc)
		var inc2 rules.Incident
		if err := decodeIncident(make([]byte, 8), again, &inc2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if err := sameValue(reflect.ValueOf(inc2), reflect.ValueOf(inc), "Incident"); err != nil {
			t.Fatal(err)
		}
	})
}
