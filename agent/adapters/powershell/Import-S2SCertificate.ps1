<#
.SYNOPSIS
    Imports the S2S certificate's PFX into LocalMachine\My of an async-service server, with its
    private key in the machine key set (KeySpec 1), without certutil.
.DESCRIPTION
    The PFX password comes from the environment variable SETUP_PFX_PASSWORD (never the command line
    of this script or of any program it starts; an empty value is a valid password). The PFX is read
    here and its bytes passed, with the password as a SecureString, to the import script block: run
    locally when -ComputerName is this machine, otherwise through Invoke-Command (remoting encrypts
    the arguments; no copy of the PFX is written on the remote server).
    The import: X509Certificate2Collection.Import(bytes, password, MachineKeySet | PersistKeySet),
    then X509Store('My', 'LocalMachine').Add. Windows takes the KeySpec from the PFX's key bag
    attributes (the agent refuses a PFX that would not give KeySpec 1); it is read back and anything
    but 1 fails with the manual fix (certutil -importpfx <file> AT_KEYEXCHANGE).
    Refuses when the store already holds another certificate with the same subject, compared as the
    subject Name's DER (SubjectName.RawData; CRM would then fail with "private key not found").
    When the store's Add or the KeySpec read-back fails, what this import left is removed again: the
    certificate from the store (unless it was there before) and the key it persisted. Prints one JSON
    object:
    {"thumbprint":"<40 hex>","keySpec":1,"alreadyPresent":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ComputerName,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$PfxPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$import = {
    param([byte[]]$Bytes, [System.Security.SecureString]$Password)
    $ErrorActionPreference = 'Stop'

    # ---- Get-CertificateKeyInfo: identical in Get-MachineCertificate.ps1, Grant-CertificateKeyAccess.ps1
    # and Import-S2SCertificate.ps1 (a remote script block cannot dot-source a local file; the test
    # test/agent/adapters/powershell/scripts.test.ts checks the three copies are the same).
    # The KeySpec and the key container file of a certificate's private key, as CRM sees them.
    # Windows PowerShell 5.1 runs on .NET Framework 4.x, where
    # RSACertificateExtensions.GetRSAPrivateKey() opens every key through CNG
    # (CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG), a legacy CSP key too: it returns RSACng and a KeySpec 1 key
    # would read as KeySpec 0, its file looked for under Crypto\Keys (dotnet/corefx#3502).
    # X509Certificate2.PrivateKey opens CSP keys as RSACryptoServiceProvider: KeyNumber is the KeySpec
    # (Exchange 1, Signature 2) and the file is Crypto\RSA\MachineKeys\<UniqueKeyContainerName>. For a
    # CNG key it throws ("Invalid provider type specified"): KeySpec 0, the file
    # Crypto\Keys\<RSACng.Key.UniqueName> through GetRSAPrivateKey(). `key` is the opened key object
    # (RSACryptoServiceProvider or RSACng), for deleting a key the import persisted.
    function Get-CertificateKeyInfo([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        if (-not $Certificate.HasPrivateKey) { return $null }
        $csp = $null
        try { $csp = $Certificate.PrivateKey } catch { $csp = $null }
        if ($csp -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $container = $csp.CspKeyContainerInfo
            $keySpec = 2
            if ($container.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange) { $keySpec = 1 }
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\RSA\MachineKeys\' + $container.UniqueKeyContainerName)
            return @{ keySpec = $keySpec; file = $file; key = $csp }
        }
        $cng = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($cng -is [System.Security.Cryptography.RSACng]) {
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\Keys\' + $cng.Key.UniqueName)
            return @{ keySpec = 0; file = $file; key = $cng }
        }
        throw "The private key of $($Certificate.Thumbprint) is not an RSA key."
    }
    # ---- end Get-CertificateKeyInfo

    # X509Certificate2Collection.Import takes the password as a .NET string: only in this process's memory.
    $plain = ([System.Net.NetworkCredential]::new([string]::Empty, $Password)).Password

    # The certificate with its key, read once without keeping the key (a key imported without
    # PersistKeySet is deleted when its certificate is released), so a refusal below leaves no key file.
    $probe = [System.Security.Cryptography.X509Certificates.X509Certificate2Collection]::new()
    $probe.Import($Bytes, $plain, [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::MachineKeySet)
    try {
        $withKey = @($probe | Where-Object { $_.HasPrivateKey })
        if ($withKey.Count -eq 0) { throw 'The PFX holds no certificate with its private key: export the certificate again with its private key (.pfx).' }
        $thumbprint = $withKey[0].Thumbprint.ToUpperInvariant()
        $subject = $withKey[0].Subject
        $subjectDer = [Convert]::ToBase64String($withKey[0].SubjectName.RawData)
    }
    finally {
        foreach ($item in $probe) { $item.Reset() }
    }

    $path = 'Cert:\LocalMachine\My\' + $thumbprint
    $existing = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue
    if ($null -ne $existing) {
        $existingKey = Get-CertificateKeyInfo $existing
        if ($null -ne $existingKey -and $existingKey.keySpec -eq 1) {
            return @{ thumbprint = $thumbprint; keySpec = 1; alreadyPresent = $true }
        }
    }
    $others = @(Get-ChildItem -Path 'Cert:\LocalMachine\My' | Where-Object { [Convert]::ToBase64String($_.SubjectName.RawData) -ceq $subjectDer -and $_.Thumbprint -ne $thumbprint })
    if ($others.Count -gt 0) {
        throw "LocalMachine\My already holds another certificate with the subject '$subject' (thumbprint $($others[0].Thumbprint)): CRM would not find the right private key (private key not found). Remove that certificate first."
    }

    $flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::MachineKeySet -bor [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::PersistKeySet
    $collection = [System.Security.Cryptography.X509Certificates.X509Certificate2Collection]::new()
    $store = [System.Security.Cryptography.X509Certificates.X509Store]::new(
        [System.Security.Cryptography.X509Certificates.StoreName]::My,
        [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    # PersistKeySet writes the key containers during Import: from here on, a failure removes what this
    # import left (see the catch below).
    $collection.Import($Bytes, $plain, $flags)
    $plain = $null
    $storeChanged = $false
    try {
        $certificate = @($collection | Where-Object { $_.HasPrivateKey -and $_.Thumbprint -eq $thumbprint })
        if ($certificate.Count -eq 0) { throw "The PFX no longer holds the certificate $thumbprint with its private key." }
        $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadWrite)
        try {
            $store.Add($certificate[0])
            $storeChanged = $true
        }
        finally {
            $store.Close()
        }

        $added = Get-Item -LiteralPath $path
        $key = Get-CertificateKeyInfo $added
        if ($null -eq $key -or $key.keySpec -ne 1) {
            $shown = 'none (no private key)'
            if ($null -ne $key) { $shown = [string]$key.keySpec }
            throw "The certificate $thumbprint is in LocalMachine\My with KeySpec $shown, but CRM needs KeySpec 1 (AT_KEYEXCHANGE). Import it on this server with: certutil -importpfx <file> AT_KEYEXCHANGE, then resume the rotation."
        }
    }
    catch {
        $failure = $_
        # Undo this import, best effort (a cleanup error must not hide the failure):
        # 1. the certificate leaves the store, unless it was there before this import (then it stays
        #    as it was found, for the manual fix);
        # 2. every key the collection persisted is deleted: a CAPI key through its
        #    RSACryptoServiceProvider (PersistKeyInCsp = $false, then Clear() deletes the container),
        #    a CNG key with CngKey.Delete(). Not for a certificate that was already there: its store
        #    entry would then point at a deleted key.
        if ($storeChanged -and $null -eq $existing) {
            try {
                $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadWrite)
                try { $store.Remove($certificate[0]) } finally { $store.Close() }
            }
            catch { [Console]::Error.WriteLine("Could not remove $thumbprint from LocalMachine\My again: $($_.Exception.Message)") }
        }
        if ($null -eq $existing) {
            foreach ($item in $collection) {
                try {
                    $leftover = Get-CertificateKeyInfo $item
                    if ($null -eq $leftover) { continue }
                    if ($leftover.key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
                        $leftover.key.PersistKeyInCsp = $false
                        $leftover.key.Clear()
                    }
                    else {
                        $leftover.key.Key.Delete()
                    }
                }
                catch { [Console]::Error.WriteLine("Could not delete the imported key of $($item.Thumbprint): $($_.Exception.Message)") }
            }
        }
        throw $failure
    }
    finally {
        foreach ($item in $collection) { $item.Reset() }
        $collection.Clear()
    }
    return @{ thumbprint = $thumbprint; keySpec = 1; alreadyPresent = $false }
}

try {
    # The runner sets SETUP_PFX_PASSWORD for this script only. An empty value is a valid password;
    # Windows may hand an empty variable over as absent from $env:, so the block itself is asked.
    $plainPassword = $env:SETUP_PFX_PASSWORD
    if ($null -eq $plainPassword) {
        if (-not [Environment]::GetEnvironmentVariables().Contains('SETUP_PFX_PASSWORD')) {
            throw 'SETUP_PFX_PASSWORD is not set: the agent passes the PFX password in this environment variable.'
        }
        $plainPassword = ''
    }
    [Environment]::SetEnvironmentVariable('SETUP_PFX_PASSWORD', $null)
    # A SecureString built with .NET methods, not ConvertTo-SecureString -AsPlainText: module logging
    # records cmdlet parameters, so the password is never a cmdlet argument (Invoke-Command's
    # -ArgumentList logs as System.Security.SecureString; remoting encrypts it with the session key).
    $password = [System.Security.SecureString]::new()
    foreach ($character in $plainPassword.ToCharArray()) { $password.AppendChar($character) }
    $password.MakeReadOnly()
    $plainPassword = $null

    $bytes = [System.IO.File]::ReadAllBytes((Resolve-Path -LiteralPath $PfxPath).ProviderPath)

    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $import $bytes $password
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $import -ArgumentList $bytes, $password
    }
    $keySpec = $null
    if ($null -ne $state.keySpec) { $keySpec = [int]$state.keySpec }
    $result = [ordered]@{ thumbprint = [string]$state.thumbprint; keySpec = $keySpec; alreadyPresent = [bool]$state.alreadyPresent }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Import-S2SCertificate on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
