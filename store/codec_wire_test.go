package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/procwatch/procwatch/rules"
)

// nested says which fields of which message hold a message of which schema.
var nested = map[*wireTypes]map[protowire.Number]*wireTypes{
	incWire:    {fIncTime: timeWire, fIncFirstSeen: timeWire, fIncLastSeen: timeWire, fIncProcess: evWire, fIncFate: fateWire, fIncHistory: changeWire},
	evWire:     {fEvTime: timeWire, fEvAncestors: ancWire},
	fateWire:   {fFateTime: timeWire},
	changeWire: {fChangeTime: timeWire, fChangeBy: actorWire},
}

// checkWritten walks a record the encoder wrote and fails for every field
// the schema does not know or knows with another wire type.
func checkWritten(t *testing.T, path string, buf []byte, want *wireTypes) {
	t.Helper()
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			t.Fatalf("%s: bad tag", path)
		}
		buf = buf[n:]
		n = protowire.ConsumeFieldValue(num, typ, buf)
		if n < 0 {
			t.Fatalf("%s: field %d: bad value", path, num)
		}
		val := buf[:n]
		buf = buf[n:]
		switch kind := want.kind(num); {
		case kind == varintField && typ == protowire.VarintType:
		case kind == bytesField && typ == protowire.BytesType:
			if sub := nested[want][num]; sub != nil {
				b, _ := protowire.ConsumeBytes(val)
				checkWritten(t, fmt.Sprintf("%s.%d", path, num), b, sub)
			}
		case kind == unknownField:
			t.Errorf("%s: the encoder writes field %d (%s) but codec_wire.go does not list it", path, num, wireName(typ))
		default:
			t.Errorf("%s: the encoder writes field %d as %s, codec_wire.go lists it otherwise", path, num, wireName(typ))
		}
	}
}

// TestCodecWireTypesMatchEncoder: every field the encoder writes, at every
// depth, is in the decoder's schema with the wire type it is written as.
func TestCodecWireTypesMatchEncoder(t *testing.T) {
	inc := filled()
	var e encoder
	checkWritten(t, "incident", e.encodeIncident(nil, &inc), incWire)
}

// TestCodecRejectsWrongWireType: a known field carrying the other wire
// type is reported as a corrupt record instead of being read as zero or
// as bytes from the wrong place, at the top level and inside messages.
func TestCodecRejectsWrongWireType(t *testing.T) {
	inc := fixture(baseTime, 1)
	var e encoder
	val := e.encodeIncident(nil, &inc)
	asBytes := func(num protowire.Number) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendString(b, "abc")
	}
	asVarint := func(num protowire.Number) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 7)
	}
	inMessage := func(num protowire.Number, inner []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), inner)
	}
	tests := []struct {
		name  string
		extra []byte
		want  string
	}{
		{"severity as bytes", asBytes(fIncSeverity), "field 7 is bytes, procwatch writes it as varint"},
		{"host as varint", asVarint(fIncHost), "field 3 is varint, procwatch writes it as bytes"},
		{"process as varint", asVarint(fIncProcess), "field 10 is varint"},
		{"count as fixed64", protowire.AppendFixed64(protowire.AppendTag(nil, fIncCount, protowire.Fixed64Type), 1), "field 11 is fixed64"},
		{"event pid as bytes", inMessage(fIncProcess, asBytes(fEvPID)), "field 3 is bytes, procwatch writes it as varint"},
		{"event exe as varint", inMessage(fIncProcess, asVarint(fEvExe)), "field 12 is varint"},
		{"time seconds as bytes", inMessage(fIncLastSeen, asBytes(fTimeSec)), "field 1 is bytes"},
		{"actor uid as bytes", inMessage(fIncHistory, inMessage(fChangeBy, asBytes(fActorUID))), "field 1 is bytes"},
		{"ancestor exe as varint", inMessage(fIncProcess, inMessage(fEvAncestors, asVarint(fAncExe))), "field 2 is varint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := append(append([]byte(nil), val...), tt.extra...)
			var got rules.Incident
			err := decodeIncident(inc.ID.Bytes(), rec, &got)
			if !errors.Is(err, errCorruptRecord) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decode = %v, want a corrupt record error with %q", err, tt.want)
			}
		})
	}
}
