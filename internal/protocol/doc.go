// Package protocol will hold the three wire formats — git's credential
// helper protocol, the docker credential-helper protocol and kubectl's
// ExecCredential — parsed and written with nothing else mixed in.
// Nothing is implemented here yet.
package protocol
