<#
.SYNOPSIS
  Build the Windows payload of auditagent: the embeddable CPython with the agent and its
  wheels, ready for build-msi.sh (wixl) to package.

.DESCRIPTION
  Runs on Windows (the CI's windows-latest job) with a CPython of the same minor version
  on PATH (actions/setup-python). Downloads the official embeddable zip from python.org,
  enables site-packages in its ._pth file, installs the agent wheel and its dependencies
  (win_amd64 wheels from PyPI) into python\Lib\site-packages, precompiles them, and
  smoke-tests the result: `python.exe -I -m auditagent.cli check --json` must answer.

  Output: <Out>\python\  (python.exe, pythonw.exe, python3XX.zip, Lib\site-packages …)

.EXAMPLE
  pwsh packaging/windows/build.ps1 -Out build\windows -PythonVersion 3.12.8
#>
param(
  [string]$Out = "build\windows",
  [string]$PythonVersion = "3.12.8",
  [string]$Sha256 = ""        # optional: expected sha256 of the embeddable zip
)
$ErrorActionPreference = "Stop"
$Repo = (Resolve-Path "$PSScriptRoot\..\..").Path
$Out = [IO.Path]::GetFullPath($Out)
$Py = Join-Path $Out "python"
$Work = Join-Path $Out "work"
$mm = ($PythonVersion -split "\.")[0..1] -join ""
$hostVer = & python -c "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')"
if ($hostVer -ne $mm) { throw "host python is $hostVer, the payload is $mm: install Python $PythonVersion first" }

Remove-Item -Recurse -Force $Out -ErrorAction SilentlyContinue
New-Item -ItemType Directory -Force $Py, $Work | Out-Null

# 1. Embeddable CPython.
$zip = Join-Path $Work "python-embed.zip"
$url = "https://www.python.org/ftp/python/$PythonVersion/python-$PythonVersion-embed-amd64.zip"
Invoke-WebRequest -Uri $url -OutFile $zip -UseBasicParsing
if ($Sha256 -and ((Get-FileHash $zip -Algorithm SHA256).Hash -ne $Sha256.ToUpper())) { throw "sha256 mismatch for $url" }
Expand-Archive $zip -DestinationPath $Py
$pth = Get-ChildItem $Py -Filter "python$mm._pth" | Select-Object -First 1
# The ._pth file fixes sys.path (no PYTHONPATH, no registry): the stdlib zip, the folder,
# site-packages; `import site` so .pth files of the wheels work.
Set-Content -Encoding ascii $pth.FullName "python$mm.zip`r`n.`r`nLib\site-packages`r`nimport site`r`n"

# 2. The agent wheel and its dependencies (Windows wheels), installed into the payload.
python -m pip wheel --no-deps -w (Join-Path $Work "wheels") $Repo
$wheel = Get-ChildItem (Join-Path $Work "wheels") -Filter "auditagent-*.whl" | Select-Object -First 1
$site = Join-Path $Py "Lib\site-packages"
python -m pip install --no-compile --target $site --platform win_amd64 --python-version $mm `
  --implementation cp --only-binary=:all: $wheel.FullName
if ($LASTEXITCODE -ne 0) { throw "pip install failed" }

# 3. Agent only; no console-script launchers (they would point at this build machine).
Remove-Item -Recurse -Force (Join-Path $site "server"), (Join-Path $site "bin") -ErrorAction SilentlyContinue

# 4. Bytecode, never rewritten under Program Files.
& (Join-Path $Py "python.exe") -I -m compileall -q --invalidation-mode unchecked-hash `
  -s $Py -p "C:\Program Files\auditagent\python" $site
if ($LASTEXITCODE -ne 0) { throw "compileall failed" }

# 5. Smoke test: the payload's own interpreter runs the self-check (0 ready, 1 not ready).
$env:AUDITAGENT_HOME = Join-Path $Work "home"
& (Join-Path $Py "python.exe") -I -m auditagent.cli check --json | Out-File (Join-Path $Work "check.json")
if ($LASTEXITCODE -gt 1) { throw "payload self-check failed with exit $LASTEXITCODE" }
Remove-Item Env:\AUDITAGENT_HOME
Remove-Item -Recurse -Force $Work
Write-Output $Py
