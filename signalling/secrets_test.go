package signalling

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Tokens, secrets and publishable keys never reach the server's log, whatever happens to the
// connection (accepted, rejected, kicked) and for REST calls, even at debug level.
func TestLogsNeverContainCredentials(t *testing.T) {
	ts := newTestServer(t, nil)
	tok := mint(t, Claims{Subject: "alice"})
	bad := mintWith(t, testKID, "not-the-secret", Claims{Subject: "mallory"})
	expired := mint(t, Claims{Subject: "old", ExpiresAt: time.Now().Add(-time.Hour).Unix()})

	alice := ts.connect(t, tokenQuery(tok))
	alice.subscribe(t, "room", "r1")
	ts.dial(t, tokenQuery(bad)).expectClose(t, CloseInvalidToken)
	ts.dial(t, tokenQuery(expired)).expectClose(t, CloseTokenExpired)
	ts.connect(t, keyQuery(testPK))

	_, minted := ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer, strings.NewReader(`{"peerId":"bob"}`), nil)
	ts.restCall(t, http.MethodDelete, "/v1/peers/alice", testBearer, nil, nil)
	alice.expectClose(t, CloseAdminDisconnect)

	logs := ts.logs.String()
	if !strings.Contains(logs, "connection accepted") || !strings.Contains(logs, "connection rejected") {
		t.Fatalf("the log did not record the connections at all:\n%s", logs)
	}
	mintedTok := string(minted)
	if i := strings.Index(mintedTok, `"token":"`); i >= 0 {
		mintedTok = mintedTok[i+9:]
		mintedTok = mintedTok[:strings.IndexByte(mintedTok, '"')]
	}
	for name, secret := range map[string]string{
		"token": tok, "bad token": bad, "expired token": expired, "minted token": mintedTok,
		"secret": testSecret, "publishable key": testPK, "token signature": tok[strings.LastIndexByte(tok, '.')+1:],
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the server log contains the %s", name)
		}
	}
}
