package entratest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

const deviceCodeLifetime = 15 * time.Minute

type deviceCode struct {
	userCode string
	clientID string
	tenant   string // path tenant as requested
	expires  time.Time
	approved string // username, once approved
	denied   bool
	created  time.Time
}

type authCode struct {
	clientID    string
	username    string
	tenant      string
	redirectURI string
	challenge   string
	expires     time.Time
}

// deviceCodeStart serves POST /{tenant}/oauth2/v2.0/devicecode.
func (s *Server) deviceCodeStart(w http.ResponseWriter, r *http.Request, pathTenant string) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 900144, "the request body must be application/x-www-form-urlencoded")
		return
	}
	if _, err := s.resolveTenant(pathTenant); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("tenant '%s' not found", pathTenant))
		return
	}
	clientID := strings.ToLower(r.PostForm.Get("client_id"))
	s.mu.Lock()
	app := s.apps[clientID]
	s.mu.Unlock()
	if app == nil || !app.Public {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", 7000218, "the application is not a public client and cannot use the device code flow")
		return
	}
	if _, _, _, err := resourceOf(strings.Fields(r.PostForm.Get("scope"))); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", 28000, err.Error())
		return
	}
	dc := &deviceCode{
		userCode: strings.ToUpper(randHex(5))[:9],
		clientID: clientID,
		tenant:   strings.ToLower(pathTenant),
		expires:  time.Now().Add(deviceCodeLifetime),
		created:  time.Now(),
	}
	device := "dc." + randHex(24)
	s.mu.Lock()
	dc.approved = s.autoApproveDC
	s.deviceCodes[device] = dc
	s.mu.Unlock()
	verify := s.URL + "/devicelogin"
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        dc.userCode,
		"device_code":      device,
		"verification_uri": verify,
		"expires_in":       int(deviceCodeLifetime / time.Second),
		"interval":         5,
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, dc.userCode),
	})
}

// deviceCodeToken answers the device_code grant: pending until approved.
func (s *Server) deviceCodeToken(w http.ResponseWriter, r *http.Request, app *App, device string, scopes []string, clientInfo bool) {
	s.mu.Lock()
	dc := s.deviceCodes[device]
	var user *User
	if dc != nil && dc.approved != "" {
		user = s.users[strings.ToLower(dc.approved)]
		delete(s.deviceCodes, device) // a device code is redeemed once
	}
	s.mu.Unlock()
	switch {
	case dc == nil || !strings.EqualFold(dc.clientID, app.ClientID):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 70000, "the device code is unknown or was already redeemed")
	case time.Now().After(dc.expires):
		writeOAuthError(w, http.StatusBadRequest, "expired_token", 70020, "the device code expired; start the sign-in again")
	case dc.denied:
		writeOAuthError(w, http.StatusBadRequest, "authorization_declined", 70019, "the user declined the sign-in")
	case user == nil:
		writeOAuthError(w, http.StatusBadRequest, "authorization_pending", 70016, "the user has not yet finished signing in")
	default:
		tid, _ := s.resolveTenant(dc.tenant)
		s.issueUser(w, app, user, tid, scopes, clientInfo)
	}
}

// PendingDeviceCodes lists the user codes waiting for approval, oldest first.
func (s *Server) PendingDeviceCodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dcs []*deviceCode
	for _, dc := range s.deviceCodes {
		if dc.approved == "" && !dc.denied {
			dcs = append(dcs, dc)
		}
	}
	sort.Slice(dcs, func(i, j int) bool { return dcs[i].created.Before(dcs[j].created) })
	out := make([]string, len(dcs))
	for i, dc := range dcs {
		out[i] = dc.userCode
	}
	return out
}

// ApproveDeviceCode signs username in for the device code with userCode, as
// a person at the verification page would.
func (s *Server) ApproveDeviceCode(userCode, username string) error {
	return s.decideDeviceCode(userCode, func(dc *deviceCode) error {
		if s.users[strings.ToLower(username)] == nil {
			return fmt.Errorf("unknown user %q", username)
		}
		dc.approved = username
		return nil
	})
}

// SetDeviceCodeAutoApprove signs username in to every new device code at
// once (the demo uses it); "" turns it off.
func (s *Server) SetDeviceCodeAutoApprove(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autoApproveDC = username
}

// DenyDeviceCode declines the sign-in for userCode.
func (s *Server) DenyDeviceCode(userCode string) error {
	return s.decideDeviceCode(userCode, func(dc *deviceCode) error { dc.denied = true; return nil })
}

func (s *Server) decideDeviceCode(userCode string, f func(*deviceCode) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dc := range s.deviceCodes {
		if strings.EqualFold(dc.userCode, strings.TrimSpace(userCode)) {
			return f(dc)
		}
	}
	return errors.New("no pending sign-in has that code")
}

// authorize serves GET /{tenant}/oauth2/v2.0/authorize: the "browser"
// signs in at once as login_hint (when it names a user) or the browser user
// and redirects to the loopback redirect_uri with a code, as Entra does after
// a person signs in.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pathTenant string) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if err != nil || ru.Scheme != "http" || (ru.Hostname() != "localhost" && ru.Hostname() != "127.0.0.1") {
		http.Error(w, "AADSTS50011: the redirect URI must be a loopback http URI for a public client", http.StatusBadRequest)
		return
	}
	// MSAL asks for response_mode=form_post: Entra then answers a page that
	// posts the code to the loopback server; otherwise it redirects.
	back := func(v url.Values) {
		v.Set("state", q.Get("state"))
		if q.Get("response_mode") == "form_post" {
			writeFormPost(w, redirect, v)
			return
		}
		ru.RawQuery = v.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	clientID := strings.ToLower(q.Get("client_id"))
	s.mu.Lock()
	app := s.apps[clientID]
	username := s.browserUser
	if hint := strings.ToLower(q.Get("login_hint")); hint != "" && s.users[hint] != nil {
		username = hint
	}
	user := s.users[strings.ToLower(username)]
	s.mu.Unlock()
	switch {
	case app == nil || !app.Public:
		back(url.Values{"error": {"unauthorized_client"}, "error_description": {"AADSTS700016: the application is not a public client here"}})
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"AADSTS900144: response_type=code with an S256 code_challenge is required"}})
		return
	case user == nil:
		back(url.Values{"error": {"access_denied"}, "error_description": {"AADSTS50126: nobody signed in (set a browser user)"}})
		return
	}
	code := "ac." + randHex(24)
	tid, _ := s.resolveTenant(pathTenant)
	s.mu.Lock()
	s.authCodes[code] = authCode{clientID: clientID, username: username, tenant: tid, redirectURI: redirect,
		challenge: q.Get("code_challenge"), expires: time.Now().Add(5 * time.Minute)}
	s.mu.Unlock()
	back(url.Values{"code": {code}})
}

func writeFormPost(w http.ResponseWriter, action string, v url.Values) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="%s">`, html.EscapeString(action))
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v.Get(k)))
	}
	fmt.Fprint(w, `</form></body></html>`)
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)">`)

// Browse plays the person's browser for an interactive sign-in: it opens
// authorizeURL (as given to an opener such as MSAL's WithOpenURL) and
// submits the page's form_post to the loopback redirect URI, or follows the
// redirect. Use SetBrowserUser first to choose who signs in.
func (s *Server) Browse(ctx context.Context, authorizeURL string) error {
	c := s.HTTPClient()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	m := formAction.FindSubmatch(body)
	if m == nil {
		if resp.StatusCode >= 400 {
			return fmt.Errorf("authorize page answered %s", resp.Status)
		}
		return nil // a redirect was followed to the loopback server already
	}
	form := url.Values{}
	for _, in := range hiddenInput.FindAllSubmatch(body, -1) {
		form.Set(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, html.UnescapeString(string(m[1])), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("loopback redirect URI answered %s", resp.Status)
	}
	return nil
}

// authCodeToken redeems an authorization code once, checking PKCE.
func (s *Server) authCodeToken(w http.ResponseWriter, app *App, f url.Values, scopes []string, clientInfo bool) {
	code := f.Get("code")
	s.mu.Lock()
	ac, ok := s.authCodes[code]
	delete(s.authCodes, code)
	user := s.users[strings.ToLower(ac.username)]
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok || time.Now().After(ac.expires) || !strings.EqualFold(ac.clientID, app.ClientID):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 70008, "the authorization code is invalid, expired or already redeemed")
	case ac.redirectURI != f.Get("redirect_uri"):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 70001, "the redirect_uri does not match the one of the authorization request")
	case b64.EncodeToString(sum[:]) != ac.challenge:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 501481, "the code_verifier does not match the code_challenge")
	default:
		s.issueUser(w, app, user, ac.tenant, scopes, clientInfo)
	}
}

// IssueFederatedToken mints an external token, as a Kubernetes service
// account issuer or a CI OIDC provider would, that an App with a matching
// FederatedCredential accepts as a client assertion.
func (s *Server) IssueFederatedToken(issuer, subject string, ttl time.Duration) (string, error) {
	now := time.Now()
	return signJWT(s.fedKey, "fed", map[string]any{
		"iss": issuer, "sub": subject, "aud": []string{FederationAudience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randHex(8),
	})
}

// FederationIssuer is a default issuer name for federated credentials.
func (s *Server) FederationIssuer() string { return s.URL + "/federation" }

// Claims are the parts of a verified access token resource servers use.
type Claims struct {
	Audience string
	TenantID string
	ObjectID string
	AppID    string
	UPN      string // users only
	Scope    string // delegated permissions (scp)
	Expires  time.Time
}

// Verify checks that raw is an unexpired access token this authority signed
// for audience (a trailing slash on either side is ignored), as a resource
// server validates a bearer token.
func (s *Server) Verify(raw, audience string) (*Claims, error) {
	p, err := parseJWT(raw)
	if err != nil {
		return nil, err
	}
	if alg, _ := p.header["alg"].(string); alg != "RS256" {
		return nil, errors.New("token is not RS256")
	}
	if err := p.verify(&s.signKey.PublicKey); err != nil {
		return nil, errors.New("token signature does not verify")
	}
	exp, _ := p.num("exp")
	if time.Now().Unix() >= exp {
		return nil, errors.New("token is expired")
	}
	if strings.TrimSuffix(p.str("aud"), "/") != strings.TrimSuffix(audience, "/") {
		return nil, fmt.Errorf("token audience %q is not %q", p.str("aud"), audience)
	}
	if !strings.HasPrefix(p.str("iss"), s.URL+"/") {
		return nil, errors.New("token was not issued by this authority")
	}
	return &Claims{
		Audience: p.str("aud"), TenantID: p.str("tid"), ObjectID: p.str("oid"), AppID: p.str("appid"),
		UPN: p.str("upn"), Scope: p.str("scp"), Expires: time.Unix(exp, 0),
	}, nil
}
