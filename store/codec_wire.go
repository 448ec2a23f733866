package store

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire type procwatch writes for each field of each stored message.
// Decoding checks a known field against it: a varint where procwatch
// writes bytes (or the reverse) is a corrupt record, not a zero value or a
// string read from the wrong place. A field number not listed is unknown
// (a newer writer's) and skipped. When you add a field to the codec, add
// it here too; TestCodecWireTypesMatchEncoder fails until you do.
var (
	incWire = wireOf(
		[]protowire.Number{fIncSeverity, fIncCount, fIncDistinct},
		[]protowire.Number{fIncTime, fIncHost, fIncRule, fIncType, fIncOutcome, fIncSummary, fIncStatus,
			fIncProcess, fIncFirstSeen, fIncLastSeen, fIncFate, fIncSample, fIncScope, fIncHistory})
	evWire = wireOf(
		[]protowire.Number{fEvPID, fEvTID, fEvPPID, fEvUID, fEvEUID, fEvGID, fEvEGID, fEvAUID,
			fEvExeDev, fEvExeIno, fEvExeOwner, fEvMntNS, fEvArgsTruncated,
			fEvOldUID, fEvOldEUID, fEvNewUID, fEvNewEUID, fEvExitCode, fEvCoreDumped, fEvDurationNS},
		[]protowire.Number{fEvType, fEvTime, fEvComm, fEvExe, fEvExeOrigin, fEvExeFS, fEvScript, fEvExeSHA256,
			fEvFilename, fEvArgs, fEvCwd, fEvTTY, fEvCgroup, fEvContainerID, fEvContainerName,
			fEvContainerImage, fEvContainerRuntime, fEvParentExe, fEvAncestors, fEvOutcome, fEvErrno,
			fEvMethod, fEvSignal})
	fateWire = wireOf(
		[]protowire.Number{fFateExitCode, fFateCoreDumped, fFateDurationNS},
		[]protowire.Number{fFateTime, fFateSignal})
	changeWire = wireOf(nil, []protowire.Number{fChangeTime, fChangeFrom, fChangeTo, fChangeBy, fChangeSkip})
	actorWire  = wireOf(
		[]protowire.Number{fActorUID, fActorPID},
		[]protowire.Number{fActorUser, fActorSSHUser, fActorSSHFrom, fActorVia})
	ancWire  = wireOf([]protowire.Number{fAncPID}, []protowire.Number{fAncExe})
	timeWire = wireOf([]protowire.Number{fTimeSec, fTimeNsec, fTimeOffset}, nil)
)

// wireMax bounds the field numbers a schema can know.
const wireMax = 128

// wireTypes is one message's schema, indexed by field number.
type wireTypes [wireMax]wireKind

type wireKind uint8

const (
	unknownField wireKind = iota
	varintField
	bytesField
)

func wireOf(varints, bytes []protowire.Number) *wireTypes {
	var w wireTypes
	for _, n := range varints {
		w[n] = varintField
	}
	for _, n := range bytes {
		if w[n] != unknownField {
			panic(fmt.Sprintf("store: field %d listed twice", n))
		}
		w[n] = bytesField
	}
	return &w
}

// kind is the wire kind procwatch writes for num, or unknownField.
func (w *wireTypes) kind(num protowire.Number) wireKind {
	if num < 0 || num >= wireMax {
		return unknownField
	}
	return w[num]
}

// wireName names a wire type for error messages.
func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.BytesType:
		return "bytes"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	}
	return fmt.Sprintf("type %d", t)
}
