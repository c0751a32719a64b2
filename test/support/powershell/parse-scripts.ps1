<#
    Test fixture: parses each .ps1 file with PowerShell's own parser and prints one JSON array, one
    entry per file: its parse errors, its uses of PowerShell-7-only syntax (the CRM servers run
    Windows PowerShell 5.1, whose parser rejects them), and its own param() block as the AST sees
    it. One process for all files (pwsh takes about a second to start).
    Used by test/support/powershell-parse.ts.
#>
param([Parameter(ValueFromRemainingArguments = $true)][string[]]$Files)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

# Token kinds PowerShell 7 added to the language ("a ?? b", "a ??= b", "a?.b", "a?[0]", "a && b", "a || b").
$pwsh7Tokens = @('QuestionQuestion', 'QuestionQuestionEquals', 'QuestionDot', 'QuestionLBracket', 'AndAnd', 'OrOr')

function Get-AllTokens($Tokens) {
    foreach ($token in $Tokens) {
        $token
        if ($token -is [System.Management.Automation.Language.StringExpandableToken] -and $null -ne $token.NestedTokens) {
            Get-AllTokens $token.NestedTokens
        }
    }
}

function Get-Pwsh7Syntax($Ast, $Tokens) {
    foreach ($token in (Get-AllTokens $Tokens)) {
        if ($pwsh7Tokens -contains [string]$token.Kind) {
            [ordered]@{ line = $token.Extent.StartLineNumber; what = "token $($token.Kind) ($($token.Text))" }
        }
    }
    $found = $Ast.FindAll({
            param($node)
            ($node -is [System.Management.Automation.Language.TernaryExpressionAst]) -or
            ($node -is [System.Management.Automation.Language.PipelineChainAst]) -or
            ($node -is [System.Management.Automation.Language.BinaryExpressionAst] -and [string]$node.Operator -eq 'QuestionQuestion') -or
            ($node -is [System.Management.Automation.Language.AssignmentStatementAst] -and [string]$node.Operator -eq 'QuestionQuestionEquals') -or
            ($node -is [System.Management.Automation.Language.MemberExpressionAst] -and $node.NullConditional) -or
            ($node -is [System.Management.Automation.Language.IndexExpressionAst] -and $node.NullConditional)
        }, $true)
    foreach ($node in $found) {
        [ordered]@{ line = $node.Extent.StartLineNumber; what = "$($node.GetType().Name) ($($node.Extent.Text.Split("`n")[0].Trim()))" }
    }
}

function Get-ScriptParams($Ast) {
    if ($null -eq $Ast.ParamBlock) { return $null }
    $block = $Ast.ParamBlock
    $cmdletBinding = @($block.Attributes | Where-Object { $_.TypeName.Name -eq 'CmdletBinding' }).Count -gt 0
    $params = foreach ($parameter in $block.Parameters) {
        $types = @($parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.Language.TypeConstraintAst] } | ForEach-Object { $_.TypeName.FullName })
        $mandatory = $false
        foreach ($attribute in @($parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.Language.AttributeAst] -and $_.TypeName.Name -eq 'Parameter' })) {
            foreach ($named in $attribute.NamedArguments) {
                if ($named.ArgumentName -ne 'Mandatory') { continue }
                $mandatory = $named.ExpressionOmitted -or ($named.Argument -is [System.Management.Automation.Language.VariableExpressionAst] -and $named.Argument.VariablePath.UserPath -eq 'true')
            }
        }
        $type = $null
        if ($types.Count -gt 0) { $type = $types[-1] }
        [ordered]@{ name = $parameter.Name.VariablePath.UserPath; type = $type; mandatory = $mandatory }
    }
    return [ordered]@{ cmdletBinding = $cmdletBinding; params = @($params) }
}

$report = foreach ($file in $Files) {
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($file, [ref]$tokens, [ref]$errors)
    [ordered]@{
        file        = $file
        errors      = @($errors | ForEach-Object { [ordered]@{ line = $_.Extent.StartLineNumber; message = $_.Message } })
        pwsh7Syntax = @(Get-Pwsh7Syntax $ast $tokens)
        paramBlock  = Get-ScriptParams $ast
    }
}
ConvertTo-Json -InputObject @($report) -Depth 8 -Compress
