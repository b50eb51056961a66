// An independent RFC 4998 verifier on Bouncy Castle's org.bouncycastle.tsp.ers (Debian libbcpkix-java).
//
//   java -cp bcprov.jar:bcpkix.jar:bcutil.jar:. ErsVerify RECORD.der DATA-FILE CA.pem [CA.pem ...]
//
// Prints "OK <chains> <stamps>" and exits 0 when, for every chain i and every stamp j in it, the record
// cut after (i, j) validates with Bouncy Castle: validatePresent(data) (the data object's hash, with the
// hash of the earlier chains after a hash-tree renewal, is in the first chain stamp's reduced hash tree and
// leads to its imprint) and validate() (stamp j covers every earlier stamp of its chain, and its token's
// signature verifies with its embedded certificate, valid at genTime with the critical timeStamping EKU),
// and that certificate is signed by one of the CAs. Any failure: one line on stdout, exit 1.
import java.io.FileReader;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.List;

import org.bouncycastle.asn1.tsp.ArchiveTimeStamp;
import org.bouncycastle.asn1.tsp.ArchiveTimeStampChain;
import org.bouncycastle.asn1.tsp.ArchiveTimeStampSequence;
import org.bouncycastle.asn1.tsp.EvidenceRecord;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.ers.ERSByteData;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;

public class ErsVerify {
    public static void main(String[] args) {
        if (args.length < 3) {
            System.out.println("usage: ErsVerify RECORD.der DATA-FILE CA.pem [CA.pem ...]");
            System.exit(2);
        }
        try {
            java.security.Security.addProvider(new BouncyCastleProvider());
            byte[] der = Files.readAllBytes(Paths.get(args[0]));
            byte[] data = Files.readAllBytes(Paths.get(args[1]));
            List<X509CertificateHolder> cas = new ArrayList<>();
            for (int i = 2; i < args.length; i++) {
                try (PEMParser p = new PEMParser(new FileReader(args[i]))) {
                    Object o;
                    while ((o = p.readObject()) != null) {
                        if (o instanceof X509CertificateHolder) cas.add((X509CertificateHolder) o);
                    }
                }
            }
            DigestCalculatorProvider dcp = new JcaDigestCalculatorProviderBuilder().setProvider("BC").build();
            EvidenceRecord er = EvidenceRecord.getInstance(der);
            ERSEvidenceRecord whole = new ERSEvidenceRecord(der, dcp);  // parses as BC sees it
            ArchiveTimeStampChain[] chains = er.getArchiveTimeStampSequence().getArchiveTimeStampChains();
            Date now = new Date();
            int stamps = 0;
            for (int i = 0; i < chains.length; i++) {
                ArchiveTimeStamp[] ats = chains[i].getArchiveTimestamps();
                for (int j = 0; j < ats.length; j++) {
                    ArchiveTimeStampChain[] cut = Arrays.copyOf(chains, i + 1);
                    cut[i] = new ArchiveTimeStampChain(ats[0]);
                    for (int k = 1; k <= j; k++) cut[i] = cut[i].append(ats[k]);
                    EvidenceRecord prefix = new EvidenceRecord(er.getDigestAlgorithms(), null, null,
                            new ArchiveTimeStampSequence(cut));
                    ERSEvidenceRecord r = new ERSEvidenceRecord(prefix, dcp);
                    String where = "chain " + i + " stamp " + j + ": ";
                    try {
                        r.validatePresent(new ERSByteData(data), now);
                    } catch (Exception e) {
                        throw new Exception(where + "data not present: " + e.getMessage(), e);
                    }
                    X509CertificateHolder cert = r.getSigningCertificate();
                    if (cert == null) throw new Exception(where + "no TSA certificate in the token");
                    boolean signedByCa = false;
                    for (X509CertificateHolder ca : cas) {
                        if (ca.getSubject().equals(cert.getIssuer())
                                && cert.isSignatureValid(new JcaContentVerifierProviderBuilder().setProvider("BC").build(ca))) {
                            signedByCa = true;
                        }
                    }
                    if (!signedByCa) throw new Exception(where + "TSA certificate " + cert.getSubject() + " is not issued by a given CA");
                    try {
                        r.validate(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(cert));
                    } catch (Exception e) {
                        Throwable c = e.getCause();
                        throw new Exception(where + "stamp invalid: " + e.getMessage() + (c != null ? " (" + c.getMessage() + ")" : ""), e);
                    }
                    stamps++;
                }
            }
            if (whole.getEncoded().length == 0) throw new Exception("empty record");
            System.out.println("OK " + chains.length + " " + stamps);
        } catch (Exception e) {
            System.out.println("FAIL " + e.getMessage());
            System.exit(1);
        }
    }
}
