<#
    Test fixture (dot-sourced by standins.ps1): the Microsoft.Crm.PowerShell snap-in of the
    Deployment Tools server, on $global:StandIn.state.crm:
      snapinInstalled (default $true); organizations: [@{ Id; UniqueName; FriendlyName; State; Version }];
      serverSettings: @{ <setting> = <value> } (the ServerSettings configuration entity);
      organizationSettings: @{ <organization id, lower case> = @{ <setting> = <value> } };
      certificates: [@{ CertificateType; Data (base64 DER); Thumbprint; StoreName; StoreLocation }];
      ignoreWrites: $true makes the Set- cmdlets succeed without changing anything (a read-back
      that differs).
    Shapes as d365-contract.md ("Deployment PowerShell output") describes them: Get-CrmAdvancedSetting
    returns a Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity whose value is a KeyValuePair in
    .Attributes, and [string] of it is its type name.
    Unverified (no Microsoft document shows it): the real AttributeCollection is a
    DataCollection<string, object> that also has an indexer by key (this one: enumeration and
    Add(KeyValuePair) only, which is all a script may rely on); what Get-CrmAdvancedSetting returns
    for a setting that was never written (here: a pair with the stored value, or no pair when the
    state has no such key); that a new ConfigurationEntity has no AttributeCollection until one is
    assigned (Microsoft's samples always assign one); the certificate entity's type name
    (Microsoft.Xrm.Sdk.Deployment.Certificate) and CertificateType as a string; the errors'
    wording; Get-CrmOrganization throwing for an unknown name.
#>

if (-not ('Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity' -as [type])) {
    Add-Type -TypeDefinition @'
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;

namespace Microsoft.Xrm.Sdk.Deployment
{
    public class AttributeCollection : Collection<KeyValuePair<string, object>> { }

    public class ConfigurationEntity
    {
        public string LogicalName { get; set; }
        public Guid Id { get; set; }
        public AttributeCollection Attributes { get; set; }
    }

    public enum OrganizationState { Enabled = 0, Disabled = 1, Pending = 2, Failed = 3 }

    public class Organization
    {
        public Guid Id { get; set; }
        public string UniqueName { get; set; }
        public string FriendlyName { get; set; }
        public OrganizationState State { get; set; }
        public string Version { get; set; }
    }

    public class Certificate
    {
        public Guid Id { get; set; }
        public string Name { get; set; }
        public string CertificateType { get; set; }
        public string Data { get; set; }
        public string Thumbprint { get; set; }
        public string StoreName { get; set; }
        public string StoreLocation { get; set; }
        public string StoreFindType { get; set; }
    }
}
'@
}

function Get-CrmState {
    $crm = $global:StandIn.state.crm
    foreach ($key in @('organizations', 'certificates')) { if (-not $crm.ContainsKey($key) -or $null -eq $crm[$key]) { $crm[$key] = @() } }
    foreach ($key in @('serverSettings', 'organizationSettings')) { if (-not $crm.ContainsKey($key) -or $null -eq $crm[$key]) { $crm[$key] = @{} } }
    return $crm
}

function Assert-CrmSnapin([string]$Command) {
    if (-not $global:StandIn.crmSnapinLoaded) {
        throw [System.Management.Automation.CommandNotFoundException]::new("The term '$Command' is not recognized as a name of a cmdlet, function, script file, or executable program (Add-PSSnapin Microsoft.Crm.PowerShell first).")
    }
}

function Get-PSSnapin {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string[]]$Name, [switch]$Registered)
    if ($null -eq $Name -or $Name -notcontains 'Microsoft.Crm.PowerShell') { return Microsoft.PowerShell.Core\Get-PSSnapin @PSBoundParameters }
    $installed = [bool](Get-StandInValue (Get-CrmState) 'snapinInstalled' $true)
    if (($Registered -and $installed) -or $global:StandIn.crmSnapinLoaded) {
        return [pscustomobject]@{ Name = 'Microsoft.Crm.PowerShell'; PSVersion = [version]'5.1'; Description = 'stand-in' }
    }
    Write-Error -Message "No Windows PowerShell snap-ins matching the pattern 'Microsoft.Crm.PowerShell' were found." -Category InvalidArgument
}

function Add-PSSnapin {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string[]]$Name)
    Add-StandInCall 'Add-PSSnapin' $PSBoundParameters
    if ($Name -notcontains 'Microsoft.Crm.PowerShell') { throw "stand-in Add-PSSnapin knows only Microsoft.Crm.PowerShell, not $Name." }
    if (-not [bool](Get-StandInValue (Get-CrmState) 'snapinInstalled' $true)) {
        throw "The Windows PowerShell snap-in 'Microsoft.Crm.PowerShell' is not installed on this computer."
    }
    $global:StandIn.crmSnapinLoaded = $true
}

function New-CrmConfigurationEntity([string]$LogicalName, [guid]$Id, [hashtable]$Values, [string]$Setting) {
    $entity = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity'
    $entity.LogicalName = $LogicalName
    $entity.Id = $Id
    $entity.Attributes = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.AttributeCollection'
    if ($null -ne $Values -and $Values.ContainsKey($Setting)) {
        $entity.Attributes.Add([System.Collections.Generic.KeyValuePair[string, object]]::new($Setting, $Values[$Setting]))
    }
    return $entity
}

function Get-CrmAdvancedSetting {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true, Position = 0)][string]$ConfigurationEntityName,
        [Parameter(Mandatory = $true, Position = 1)][string]$Setting,
        [Parameter(Position = 2)][guid]$ID = [guid]::Empty
    )
    Assert-CrmSnapin 'Get-CrmAdvancedSetting'
    Add-StandInCall 'Get-CrmAdvancedSetting' $PSBoundParameters
    $crm = Get-CrmState
    switch ($ConfigurationEntityName) {
        'ServerSettings' { return New-CrmConfigurationEntity 'ServerSettings' $ID $crm.serverSettings $Setting }
        'Organization' {
            if ($ID -eq [guid]::Empty) { throw 'Get-CrmAdvancedSetting -ConfigurationEntityName Organization needs -ID (the organization id).' }
            return New-CrmConfigurationEntity 'Organization' $ID (Get-StandInValue $crm.organizationSettings $ID.ToString() @{}) $Setting
        }
        default { throw "stand-in Get-CrmAdvancedSetting does not know the configuration entity '$ConfigurationEntityName'." }
    }
}

function Set-CrmAdvancedSetting {
    [CmdletBinding(DefaultParameterSetName = 'Entity')]
    param(
        [Parameter(Mandatory = $true, ParameterSetName = 'Entity')][Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity]$Entity,
        [Parameter(ParameterSetName = 'Setting')][guid]$ID = [guid]::Empty,
        [Parameter(Mandatory = $true, ParameterSetName = 'Setting')][string]$ConfigurationEntityName,
        [Parameter(Mandatory = $true, ParameterSetName = 'Setting')][string]$Setting,
        [Parameter(Mandatory = $true, ParameterSetName = 'Setting')][string]$Value
    )
    Assert-CrmSnapin 'Set-CrmAdvancedSetting'
    Add-StandInCall 'Set-CrmAdvancedSetting' $PSBoundParameters
    $crm = Get-CrmState
    if ($PSCmdlet.ParameterSetName -eq 'Entity') {
        $ConfigurationEntityName = $Entity.LogicalName
        $ID = $Entity.Id
        if ($null -eq $Entity.Attributes) { throw 'Object reference not set to an instance of an object (the entity has no Attributes).' }
        $pairs = @($Entity.Attributes)
    }
    else {
        $pairs = @([System.Collections.Generic.KeyValuePair[string, object]]::new($Setting, $Value))
    }
    if ($ConfigurationEntityName -eq 'ServerSettings') { $target = $crm.serverSettings }
    elseif ($ConfigurationEntityName -eq 'Organization') {
        if ($ID -eq [guid]::Empty) { throw 'Set-CrmAdvancedSetting for Organization needs the organization id.' }
        if (-not $crm.organizationSettings.ContainsKey($ID.ToString())) { $crm.organizationSettings[$ID.ToString()] = @{} }
        $target = $crm.organizationSettings[$ID.ToString()]
    }
    else { throw "stand-in Set-CrmAdvancedSetting does not know the configuration entity '$ConfigurationEntityName'." }
    if ([bool](Get-StandInValue $crm 'ignoreWrites' $false)) { return }
    foreach ($pair in $pairs) { $target[$pair.Key] = $pair.Value }
}

function Get-CrmOrganization {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name)
    Assert-CrmSnapin 'Get-CrmOrganization'
    Add-StandInCall 'Get-CrmOrganization' $PSBoundParameters
    $all = foreach ($org in @((Get-CrmState).organizations)) {
        $organization = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.Organization'
        $organization.Id = [guid]$org.Id
        $organization.UniqueName = [string]$org.UniqueName
        $organization.FriendlyName = [string](Get-StandInValue $org 'FriendlyName' $org.UniqueName)
        $organization.State = [string](Get-StandInValue $org 'State' 'Enabled')
        $organization.Version = [string](Get-StandInValue $org 'Version' '9.1.0.0')
        $organization
    }
    if (-not $PSBoundParameters.ContainsKey('Name')) { return $all }
    $match = @($all | Where-Object { $_.UniqueName -eq $Name })
    if ($match.Count -eq 0) { throw "The organization '$Name' does not exist." }
    return $match[0]
}

function Get-CrmCertificate {
    [CmdletBinding()]
    param()
    Assert-CrmSnapin 'Get-CrmCertificate'
    Add-StandInCall 'Get-CrmCertificate' $PSBoundParameters
    foreach ($cert in @((Get-CrmState).certificates)) {
        $entity = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.Certificate'
        $entity.Id = [guid]::NewGuid()
        $entity.CertificateType = [string]$cert.CertificateType
        $entity.Name = [string]$cert.CertificateType
        $entity.Data = [string](Get-StandInValue $cert 'Data' '')
        $entity.Thumbprint = [string](Get-StandInValue $cert 'Thumbprint' '')
        $entity.StoreName = [string](Get-StandInValue $cert 'StoreName' 'My')
        $entity.StoreLocation = [string](Get-StandInValue $cert 'StoreLocation' 'LocalMachine')
        $entity.StoreFindType = [string](Get-StandInValue $cert 'StoreFindType' 'FindBySubjectDistinguishedName')
        $entity
    }
}

function Set-CrmCertificate {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$CertificateType,
        [Parameter(Mandatory = $true)][string]$StoreName,
        [Parameter(Mandatory = $true)][string]$StoreLocation,
        [Parameter(Mandatory = $true)][string]$StoreFindType,
        [Parameter(Mandatory = $true)][string]$DataFile
    )
    Assert-CrmSnapin 'Set-CrmCertificate'
    Add-StandInCall 'Set-CrmCertificate' $PSBoundParameters
    $crm = Get-CrmState
    $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($DataFile)
    if ([bool](Get-StandInValue $crm 'ignoreWrites' $false)) { return }
    $entry = @{
        CertificateType = $CertificateType; StoreName = $StoreName; StoreLocation = $StoreLocation; StoreFindType = $StoreFindType
        Data = [Convert]::ToBase64String($certificate.RawData); Thumbprint = $certificate.Thumbprint
    }
    $crm.certificates = @(@($crm.certificates | Where-Object { $_.CertificateType -ne $CertificateType }) + $entry)
}
