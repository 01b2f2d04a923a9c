// Package signalling implements the Metered Realtime wire protocol (see docs/protocol.md and
// ../shared/metered-protocol.md): the JSON frame types, JWT credentials, channel-pattern
// authorization, and a self-hosted server (Server) that unmodified @metered-ca/realtime SDK clients
// connect to. The server keeps all channel, presence and peer routing behind the Broker interface so
// that several instances can later share state through NATS.
package signalling
