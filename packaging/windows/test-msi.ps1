<#
.SYNOPSIS
  Install the MSI silently on a Windows CI runner, as Intune would, and check the result.

  A real collector runs on 127.0.0.1 (pip install .[server]); the MSI gets SERVER= and
  TOKEN=, must enrol, register the scheduled task with its triggers, lock down
  agent.yaml, keep TOKEN out of the msiexec log, run the self-check, and uninstall cleanly.
#>
param([Parameter(Mandatory = $true)][string]$Msi)
$ErrorActionPreference = "Stop"
$Repo = (Resolve-Path "$PSScriptRoot\..\..").Path
$Msi = (Resolve-Path $Msi).Path
function Fail($msg) { Write-Error $msg; exit 1 }

# A collector on 127.0.0.1 with a unit and a token.
$db = "sqlite:///$($env:RUNNER_TEMP -replace '\\','/')/collector.db"
python -m server.cli unit add "CI/Windows" --db $db | Out-Null
$token = (python -m server.cli token create --unit "CI/Windows" --db $db | Select-Object -Last 1).Trim()
$collector = Start-Process python -ArgumentList "-m","server.cli","serve","--db",$db,"--host","127.0.0.1","--port","8765" `
  -WorkingDirectory $Repo -PassThru -NoNewWindow
for ($i = 0; $i -lt 60; $i++) {
  try { if ((Invoke-WebRequest -UseBasicParsing http://127.0.0.1:8765/healthz).StatusCode -eq 200) { break } } catch {}
  Start-Sleep 1
}

$log = Join-Path $env:RUNNER_TEMP "install.log"
$p = Start-Process msiexec.exe -Wait -PassThru -ArgumentList "/i", "`"$Msi`"", "/qn", "/l*v", "`"$log`"", `
  "SERVER=http://127.0.0.1:8765", "TOKEN=$token"
if ($p.ExitCode -ne 0) { Get-Content $log -Tail 80; Fail "msiexec /i exited $($p.ExitCode)" }
if (Select-String -Path $log -SimpleMatch $token -Quiet) { Fail "the enrolment token appears in the msiexec log" }

$data = Join-Path $env:ProgramData "auditagent"
$cfg = Join-Path $data "agent.yaml"
if (-not (Select-String -Path $cfg -Pattern "^server: http://127.0.0.1:8765" -Quiet)) { Fail "server not set in $cfg" }
$acl = (icacls $cfg) -join "`n"
if ($acl -match "BUILTIN\\Users|Everyone|Authenticated Users") { Fail "agent.yaml readable by users:`n$acl" }
if (-not (Test-Path (Join-Path $data "state\enrollment.json"))) { Fail "not enrolled" }
if (Test-Path (Join-Path $data "state\enroll-token")) { Fail "token left behind after enrolment" }

$xml = [xml](schtasks /Query /TN "\auditagent\Report" /XML | Out-String)
$t = $xml.Task.Triggers
if (-not ($t.TimeTrigger -and $t.LogonTrigger -and $t.EventTrigger)) { Fail "task triggers missing" }
if ($xml.Task.Principals.Principal.UserId -ne "S-1-5-18") { Fail "task does not run as SYSTEM" }
schtasks /Run /TN "\auditagent\Report" | Out-Null
for ($i = 0; $i -lt 90; $i++) {
  $n = python -m server.cli device list --unit "CI/Windows" --json --db $db | ConvertFrom-Json
  if ($n.Count -ge 1 -and $n[0].last_report_at) { break }
  Start-Sleep 2
}
Get-Content (Join-Path $data "state\last-run.log") -ErrorAction SilentlyContinue

& "$env:ProgramFiles\auditagent\auditagent.cmd" check --lang en
if ($LASTEXITCODE -gt 1) { Fail "auditagent check exited $LASTEXITCODE" }
$lnk = Get-ChildItem "$env:ProgramData\Microsoft\Windows\Start Menu\Programs" -Filter "*.lnk" |
  Where-Object { $_.Name -in "Check my computer.lnk", "Kontrollera min dator.lnk", "Tjek min computer.lnk" }
if (-not $lnk) { Fail "self-check shortcut missing" }

$p = Start-Process msiexec.exe -Wait -PassThru -ArgumentList "/x", "`"$Msi`"", "/qn"
if ($p.ExitCode -ne 0) { Fail "msiexec /x exited $($p.ExitCode)" }
schtasks /Query /TN "\auditagent\Report" 2>$null
if ($LASTEXITCODE -eq 0) { Fail "scheduled task left after uninstall" }
if (Test-Path "$env:ProgramFiles\auditagent\python") { Fail "program files left after uninstall" }
Stop-Process -Id $collector.Id -Force
Write-Output "MSI install, enrolment, task, ACL, self-check and uninstall: ok"
