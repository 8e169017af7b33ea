// Package chain will hold the credential chain every helper gets its tokens
// from: the DefaultAzureCredential model (environment, workload identity,
// managed identity, Azure CLI, Azure PowerShell, Azure Developer CLI, then
// device code or browser sign-in where a person is present) on MSAL for Go.
// Nothing is implemented here yet.
package chain
