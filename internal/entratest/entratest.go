// Package entratest is a local Microsoft Entra ID authority for tests and the
// demo. It speaks the wire protocol MSAL for Go speaks — OpenID discovery,
// instance discovery, the v2.0 token and device-code endpoints, the
// authorize endpoint, and the managed-identity endpoints of App Service,
// Cloud Shell, Azure ML and IMDS — over TLS with a CA it generates, and
// issues RS256 access tokens that local resource servers verify with Verify.
//
// It counts requests per endpoint, so tests can assert that a warm path made
// none, and injects faults (invalid_client, 429, 500, slow answers, dropped
// connections) so callers can see how they fail.
//
// It is never linked into the helper binaries: only tests and the demo use it.
package entratest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fixed identities so the demo and tests read the same on every run. They are
// made up: none is a real tenant, application or user.
const (
	DefaultTenantID      = "7e5f1c3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
	DefaultClientID      = "3c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
	DefaultClientSecret  = "entratest-demo-secret-not-real"
	DefaultUsername      = "dev@contoso.example"
	DefaultUserPassword  = "entratest-demo-password"
	DefaultUserObjectID  = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	DefaultMIClientID    = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
	DefaultMIObjectID    = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	DefaultIdentityHdr   = "entratest-identity-header"
	AzureCLIClientID     = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	KubeloginClientID    = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
	FederationAudience   = "api://AzureADTokenExchange"
	defaultTokenLifetime = time.Hour
)

// Endpoint names what Count and SetFault refer to.
type Endpoint string

// The endpoints the authority serves.
const (
	EPOpenIDConfig      Endpoint = "openid-configuration"
	EPInstanceDiscovery Endpoint = "instance-discovery"
	EPUserRealm         Endpoint = "userrealm"
	EPToken             Endpoint = "token"
	EPDeviceCode        Endpoint = "devicecode"
	EPAuthorize         Endpoint = "authorize"
	EPKeys              Endpoint = "keys"
	EPAppService        Endpoint = "msi-appservice"
	EPIMDS              Endpoint = "msi-imds"
	EPCloudShell        Endpoint = "msi-cloudshell"
	EPAzureML           Endpoint = "msi-azureml"
)

// App is an application registration.
type App struct {
	ClientID string
	TenantID string // home tenant; DefaultTenantID when empty
	// MultiTenant lets the app get tokens in any tenant the authority knows.
	MultiTenant bool
	// Public apps may use the user flows (device code, browser, password,
	// refresh token) without a client credential.
	Public bool
	Secret string
	// Certificates whose keys may sign client assertions (RSA, as MSAL needs).
	Certificates []*x509.Certificate
	// Federated lists the issuer+subject pairs of external tokens accepted as
	// client assertions (workload identity, CI OIDC).
	Federated []FederatedCredential
}

// FederatedCredential is a federated identity credential on an App.
type FederatedCredential struct {
	Issuer  string
	Subject string
}

// User is a user account in a tenant.
type User struct {
	Username string
	Password string
	ObjectID string
	TenantID string // DefaultTenantID when empty
	Name     string
}

// ManagedIdentity is an identity the managed-identity endpoints answer for.
// A system-assigned identity answers requests that name no identity.
type ManagedIdentity struct {
	SystemAssigned bool
	ClientID       string
	ObjectID       string
	ResourceID     string
	TenantID       string // DefaultTenantID when empty
}

// Config sets up a Server; the zero value serves the default tenant, app,
// user and system-assigned managed identity.
type Config struct {
	// Addr and MIAddr are the TLS authority's and the plain-HTTP managed
	// identity listener's addresses; "127.0.0.1:0" when empty.
	Addr, MIAddr string
	// TokenLifetime of issued access tokens; one hour when zero.
	TokenLifetime time.Duration
	// RefreshIn, when set, is sent as refresh_in (MSAL's RefreshOn).
	RefreshIn time.Duration
	// NoDefaults skips registering the default app, user and identity.
	NoDefaults bool
	// Logf, when set, receives one line per request (never a secret).
	Logf func(format string, args ...any)
}

// Server is a running local authority. All methods are safe for concurrent use.
type Server struct {
	// URL is the authority host as https://localhost:PORT (crane and others
	// refuse loopback IPs in some places, so the host is a name).
	URL string
	// MIURL is the managed-identity listener, http://127.0.0.1:PORT.
	MIURL string

	pki      *testPKI
	signKey  *rsa.PrivateKey // access tokens
	fedKey   *rsa.PrivateKey // federated (external) assertions we mint
	kid      string
	lis, mi  net.Listener
	srv, msv *http.Server
	logf     func(string, ...any)

	mu            sync.Mutex
	lifetime      time.Duration
	refreshIn     time.Duration
	tenants       map[string]bool
	apps          map[string]*App
	users         map[string]*User // by lower-case username
	mis           []ManagedIdentity
	identityHdr   string
	refreshTokens map[string]rtGrant
	deviceCodes   map[string]*deviceCode // by device_code
	authCodes     map[string]authCode
	browserUser   string
	counts        map[Endpoint]int
	grants        map[string]int
	faults        map[Endpoint]*Fault
	revokeUsedRT  bool
	autoApproveDC string
}

// Start runs a Server until Close.
func Start(cfg Config) (*Server, error) {
	pki, err := newTestPKI()
	if err != nil {
		return nil, err
	}
	signKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	fedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{
		pki:           pki,
		signKey:       signKey,
		fedKey:        fedKey,
		kid:           randHex(8),
		logf:          cfg.Logf,
		lifetime:      cfg.TokenLifetime,
		refreshIn:     cfg.RefreshIn,
		tenants:       map[string]bool{DefaultTenantID: true},
		apps:          map[string]*App{},
		users:         map[string]*User{},
		identityHdr:   DefaultIdentityHdr,
		refreshTokens: map[string]rtGrant{},
		deviceCodes:   map[string]*deviceCode{},
		authCodes:     map[string]authCode{},
		counts:        map[Endpoint]int{},
		grants:        map[string]int{},
		faults:        map[Endpoint]*Fault{},
	}
	if s.lifetime == 0 {
		s.lifetime = defaultTokenLifetime
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if !cfg.NoDefaults {
		s.AddApp(App{ClientID: DefaultClientID, Secret: DefaultClientSecret})
		s.AddApp(App{ClientID: AzureCLIClientID, Public: true, MultiTenant: true})
		s.AddApp(App{ClientID: KubeloginClientID, Public: true, MultiTenant: true})
		s.AddUser(User{Username: DefaultUsername, Password: DefaultUserPassword, ObjectID: DefaultUserObjectID, Name: "Demo Developer"})
		s.AddManagedIdentity(ManagedIdentity{SystemAssigned: true, ClientID: DefaultMIClientID, ObjectID: DefaultMIObjectID,
			ResourceID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo"})
	}

	addr, miAddr := cfg.Addr, cfg.MIAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if miAddr == "" {
		miAddr = "127.0.0.1:0"
	}
	if s.lis, err = net.Listen("tcp", addr); err != nil {
		return nil, err
	}
	if s.mi, err = net.Listen("tcp", miAddr); err != nil {
		s.lis.Close()
		return nil, err
	}
	s.URL = "https://localhost:" + portOf(s.lis.Addr())
	s.MIURL = "http://127.0.0.1:" + portOf(s.mi.Addr())

	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveAuthority),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pki.srvCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          quietLog(),
	}
	s.msv = &http.Server{Handler: http.HandlerFunc(s.serveManagedIdentity), ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog()}
	go s.srv.ServeTLS(s.lis, "", "")
	go s.msv.Serve(s.mi)
	return s, nil
}

// Close stops both listeners at once; clients see their connections end.
func (s *Server) Close() {
	_ = s.srv.Close()
	_ = s.msv.Close()
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// Host is the authority's host:port, as used in AZURE_AUTHORITY_HOST.
func (s *Server) Host() string { return strings.TrimPrefix(s.URL, "https://") }

// Authority is the authority URL for a tenant, as MSAL's WithAuthority takes it.
func (s *Server) Authority(tenant string) string { return s.URL + "/" + tenant }

// CACertPEM is the CA that signed the server certificate.
func (s *Server) CACertPEM() []byte { return s.pki.caPEM }

// CertPool trusts the authority (and the servers using ServerTLSConfig).
func (s *Server) CertPool() *x509.CertPool { return s.pki.caPool }

// WriteCAFile writes the CA in PEM to path, for SSL_CERT_FILE.
func (s *Server) WriteCAFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, s.pki.caPEM, 0o600)
}

// HTTPClient trusts the authority's CA. Requests to IMDS's fixed address
// (169.254.169.254:80) are routed to the managed-identity listener, since
// MSAL's IMDS address cannot be configured.
func (s *Server) HTTPClient() *http.Client {
	miAddr := s.mi.Addr().String()
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.pki.caPool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == "169.254.169.254:80" {
					addr = miAddr
				}
				return d.DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2: true,
		},
	}
}

// AddApp registers (or replaces) an application.
func (s *Server) AddApp(a App) {
	if a.TenantID == "" {
		a.TenantID = DefaultTenantID
	}
	a.TenantID = strings.ToLower(a.TenantID) // tenant ids compare case-insensitively
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[a.TenantID] = true
	s.apps[strings.ToLower(a.ClientID)] = &a
}

// AddUser registers (or replaces) a user.
func (s *Server) AddUser(u User) {
	if u.TenantID == "" {
		u.TenantID = DefaultTenantID
	}
	u.TenantID = strings.ToLower(u.TenantID)
	if u.ObjectID == "" {
		u.ObjectID = newGUID()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[u.TenantID] = true
	s.users[strings.ToLower(u.Username)] = &u
}

// AddTenant makes a tenant known, so multi-tenant apps get tokens in it.
func (s *Server) AddTenant(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[strings.ToLower(id)] = true
}

// AddManagedIdentity registers an identity for the managed-identity endpoints.
func (s *Server) AddManagedIdentity(m ManagedIdentity) {
	if m.TenantID == "" {
		m.TenantID = DefaultTenantID
	}
	m.TenantID = strings.ToLower(m.TenantID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mis = append(s.mis, m)
}

// IdentityHeader is the secret App Service and Service Fabric clients send
// (IDENTITY_HEADER).
func (s *Server) IdentityHeader() string { return s.identityHdr }

// SetTokenLifetime changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetRevokeUsedRefreshTokens makes each refresh token single-use, so a client
// that loses the rotated one (a lost cache update) is found out.
func (s *Server) SetRevokeUsedRefreshTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeUsedRT = on
}

// SetBrowserUser chooses who "signs in" at the authorize endpoint; with no
// browser user the endpoint answers an error, as a cancelled sign-in would.
func (s *Server) SetBrowserUser(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.browserUser = username
}

// Count is how many requests reached an endpoint (faulted ones included).
func (s *Server) Count(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[ep]
}

// GrantCount is how many token requests used a grant type
// ("client_credentials", "refresh_token", …; "managed_identity" for the
// managed-identity endpoints).
func (s *Server) GrantCount(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[grant]
}

// Counts is a snapshot of every endpoint's count, for logs and the demo.
func (s *Server) Counts() map[Endpoint]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Endpoint]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// TokenRequests is the number of requests that could issue a token: the
// token endpoint plus every managed-identity endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[EPToken] + s.counts[EPAppService] + s.counts[EPIMDS] + s.counts[EPCloudShell] + s.counts[EPAzureML]
}

// ResetCounts zeroes the counters.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[Endpoint]int{}
	s.grants = map[string]int{}
}

// FaultKind is what a Fault does to a request.
type FaultKind int

// Faults the authority can inject.
const (
	// FaultInvalidClient answers 401 invalid_client (AADSTS7000215).
	FaultInvalidClient FaultKind = iota + 1
	// FaultThrottle answers 429 with Retry-After.
	FaultThrottle
	// FaultServerError answers 500 with an Entra-shaped error body.
	FaultServerError
	// FaultSlow waits Delay (or until the client gives up), then answers normally.
	FaultSlow
	// FaultDropConnection closes the connection without an answer.
	FaultDropConnection
)

// Fault is injected into the next Times requests of an endpoint (every
// request while set when Times is 0).
type Fault struct {
	Kind       FaultKind
	Times      int
	RetryAfter time.Duration // FaultThrottle
	Delay      time.Duration // FaultSlow
	// Served counts the requests the fault was applied to.
	Served int
}

// SetFault injects f into an endpoint, replacing any earlier fault there.
func (s *Server) SetFault(ep Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Served = 0
	s.faults[ep] = &f
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[Endpoint]*Fault{}
}

// FaultsServed is how many requests of ep a fault was applied to.
func (s *Server) FaultsServed(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.faults[ep]; f != nil {
		return f.Served
	}
	return 0
}

// count records a request and returns the fault to apply, if any.
func (s *Server) count(ep Endpoint) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[ep]++
	f := s.faults[ep]
	if f == nil || (f.Times > 0 && f.Served >= f.Times) {
		return nil
	}
	f.Served++
	cp := *f
	return &cp
}

// applyFault writes the fault's answer; it reports false when the request
// should go on normally (FaultSlow, after its delay).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) (handled bool) {
	switch f.Kind {
	case FaultSlow:
		select {
		case <-time.After(f.Delay):
			return false
		case <-r.Context().Done():
			return true
		}
	case FaultThrottle:
		secs := int(f.RetryAfter / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", 50196, "the server is throttling this client: retry after the Retry-After interval")
	case FaultServerError:
		writeOAuthError(w, http.StatusInternalServerError, "server_error", 50000, "there was an error issuing a token (injected fault)")
	case FaultInvalidClient:
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", 7000215, "invalid client secret provided (injected fault)")
	case FaultDropConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream
	}
	return true
}

// errUnknownTenant is answered as Entra's AADSTS90002.
var errUnknownTenant = errors.New("tenant not found")

// resolveTenant maps a path tenant to a tenant id; "common" and
// "organizations" (and "consumers") resolve later, from the account.
func (s *Server) resolveTenant(t string) (string, error) {
	t = strings.ToLower(t)
	switch t {
	case "common", "organizations", "consumers":
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tenants[t] {
		return "", errUnknownTenant
	}
	return t, nil
}

func (s *Server) knownTenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tenants))
	for t := range s.tenants {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func newGUID() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}
