package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Control operations: the token after "control" in a control subject.
const (
	OpStatus      = "status"
	OpMonitorOn   = "monitor_on"
	OpMonitorOff  = "monitor_off"
	OpIncidents   = "incidents"
	OpSetStatus   = "set_status" // acknowledge, mask or re-open
	OpSkips       = "skips"
	OpSkipPreview = "skip_preview"
	OpSkipAdd     = "skip_add"
	OpSkipRemove  = "skip_remove"
	OpNoise       = "noise"
	OpRules       = "rules"
	OpLive        = "live" // take or renew a lease on the live event stream
)

// controlTimeout bounds one control call on the agent.
const controlTimeout = 30 * time.Second

// SetStatusRequest acknowledges, masks or re-opens incidents.
type SetStatusRequest struct {
	IDs    []rules.ID   `json:"ids"`
	Status rules.Status `json:"status"`
}

// SkipAddReply is the answer to skip_add.
type SkipAddReply struct {
	Skip   rules.Skip `json:"skip"`
	Masked int        `json:"masked"`
}

// CountReply carries a count: incidents a skip would mask or unmasked.
type CountReply struct {
	Count int `json:"count"`
}

// SkipRemoveRequest names the skip to remove.
type SkipRemoveRequest struct {
	ID string `json:"id"`
}

// NoiseRequest asks for noise counts since a time.
type NoiseRequest struct {
	Since time.Time `json:"since"`
	Limit int       `json:"limit"`
}

// LeaseRequest asks for live events for Seconds (at most maxLease).
type LeaseRequest struct {
	Seconds int `json:"seconds"`
}

// LeaseReply says until when events flow and on which subject.
type LeaseReply struct {
	Until   time.Time `json:"until"`
	Subject string    `json:"subject"`
}

// ChangeReply confirms a change and says who it was recorded for.
type ChangeReply struct {
	By string `json:"by"`
}

type handlerFunc func(ctx context.Context, caller string, data []byte) (any, error)

// startControl adds the micro service: one endpoint per operation on
// procwatch.v1.<host>.control.<op>.*, the last token being the caller.
func (a *Agent) startControl() error {
	svc, err := micro.AddService(a.nc, micro.Config{
		Name:        ServiceName,
		Version:     semver(a.cfg.Version),
		Description: "procwatch control of one host",
		Metadata:    map[string]string{"host": a.cfg.Host},
	})
	if err != nil {
		return fmt.Errorf("start control service: %w", err)
	}
	a.svc = svc
	for op, h := range a.handlers() {
		subj := controlPrefix(a.cfg.Host) + "." + op + ".*"
		if err := svc.AddEndpoint(op, a.wrap(op, h), micro.WithEndpointSubject(subj)); err != nil {
			svc.Stop()
			return fmt.Errorf("control endpoint %s: %w", op, err)
		}
	}
	return nil
}

// semver makes a build version acceptable to micro, which wants SemVer.
func semver(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semverish(v) {
		return v
	}
	return "0.0.0"
}

func semverish(v string) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts[:2] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	last, _, _ := strings.Cut(parts[2], "-")
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// wrap decodes nothing itself: it takes the caller from the subject, runs
// h with a timeout and answers JSON or a micro error.
func (a *Agent) wrap(op string, h handlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		subj := req.Subject()
		caller := subj[strings.LastIndexByte(subj, '.')+1:]
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		defer cancel()
		// The pipeline records changes (status history, a skip's
		// added_by) as this caller.
		ctx = api.WithCaller(ctx, NATSActor(caller))
		v, err := h(ctx, caller, req.Data())
		if err != nil {
			code := "500"
			if _, ok := err.(badRequest); ok {
				code = "400"
			}
			req.Error(code, err.Error(), nil)
			return
		}
		if err := req.RespondJSON(v); err != nil {
			a.log.Warn("control reply not sent", "op", op, "err", err)
		}
	}
}

// NATSActor is how a change made over NATS is recorded: the NATS user
// from the control subject, which the account layout of docs/fleet.md lets
// no other user publish with. NATS users have no uid here, so UID is the
// "unset" value 4294967295.
func NATSActor(user string) rules.Actor {
	return rules.Actor{UID: math.MaxUint32, User: "nats:" + user, Via: "nats"}
}

// badRequest marks a request the agent could not decode.
type badRequest struct{ error }

func decode(data []byte, v any) error {
	if len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return badRequest{fmt.Errorf("bad request: %w", err)}
	}
	return nil
}

// changed records a change with its caller in the agent's log.
func (a *Agent) changed(caller, what string, args ...any) ChangeReply {
	a.log.Info("fleet control: "+what, append([]any{"by", caller}, args...)...)
	return ChangeReply{By: caller}
}

func (a *Agent) handlers() map[string]handlerFunc {
	s := a.cfg.Service
	return map[string]handlerFunc{
		OpStatus: func(ctx context.Context, _ string, _ []byte) (any, error) { return s.Status(ctx) },
		OpMonitorOn: func(ctx context.Context, by string, _ []byte) (any, error) {
			if err := s.SetMonitoring(ctx, true); err != nil {
				return nil, err
			}
			return a.changed(by, "monitoring on"), nil
		},
		OpMonitorOff: func(ctx context.Context, by string, _ []byte) (any, error) {
			if err := s.SetMonitoring(ctx, false); err != nil {
				return nil, err
			}
			return a.changed(by, "monitoring off"), nil
		},
		OpIncidents: func(ctx context.Context, _ string, data []byte) (any, error) {
			var q api.Query
			if err := decode(data, &q); err != nil {
				return nil, err
			}
			return s.Incidents(ctx, q)
		},
		OpSetStatus: func(ctx context.Context, by string, data []byte) (any, error) {
			var r SetStatusRequest
			if err := decode(data, &r); err != nil {
				return nil, err
			}
			if err := s.SetStatus(ctx, r.IDs, r.Status); err != nil {
				return nil, err
			}
			return a.changed(by, "incident status set", "status", r.Status, "ids", r.IDs), nil
		},
		OpSkips: func(ctx context.Context, _ string, _ []byte) (any, error) { return s.Skips(ctx) },
		OpSkipPreview: func(ctx context.Context, _ string, data []byte) (any, error) {
			var sk rules.Skip
			if err := decode(data, &sk); err != nil {
				return nil, err
			}
			n, err := s.PreviewSkip(ctx, sk)
			return CountReply{Count: n}, err
		},
		OpSkipAdd: func(ctx context.Context, by string, data []byte) (any, error) {
			var sk rules.Skip
			if err := decode(data, &sk); err != nil {
				return nil, err
			}
			sk.AddedBy = by // the caller the server vouches for, not a claimed name
			added, masked, err := s.AddSkip(ctx, sk)
			if err != nil {
				return nil, err
			}
			a.changed(by, "skip added", "id", added.ID, "kind", added.Kind, "value", added.Value, "masked", masked)
			return SkipAddReply{Skip: added, Masked: masked}, nil
		},
		OpSkipRemove: func(ctx context.Context, by string, data []byte) (any, error) {
			var r SkipRemoveRequest
			if err := decode(data, &r); err != nil {
				return nil, err
			}
			n, err := s.RemoveSkip(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			a.changed(by, "skip removed", "id", r.ID, "unmasked", n)
			return CountReply{Count: n}, nil
		},
		OpNoise: func(ctx context.Context, _ string, data []byte) (any, error) {
			var r NoiseRequest
			if err := decode(data, &r); err != nil {
				return nil, err
			}
			return s.Noise(ctx, r.Since, r.Limit)
		},
		OpRules: func(ctx context.Context, _ string, _ []byte) (any, error) { return s.Rules(ctx) },
		OpLive: func(ctx context.Context, by string, data []byte) (any, error) {
			var r LeaseRequest
			if err := decode(data, &r); err != nil {
				return nil, err
			}
			until := a.lease.extend(time.Duration(r.Seconds) * time.Second)
			return LeaseReply{Until: until, Subject: EventsSubject(a.cfg.Host)}, nil
		},
	}
}
